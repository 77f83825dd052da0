"""Whether a reply takes a character's name as the speaker's own ("I'm Captain Brine", "Brine here").

Shared by the persona-bleed test and bench (bench/persona_bleed.py): one definition of a claim.
"""

from __future__ import annotations

import re

__all__ = ["claims_name", "mentions_name"]


def _name_pattern(name: str) -> str:
    # The name's last word may come back a letter off ("Captain Brink" for Brine): its stem and one
    # letter match, with or without the words before it ("Captain").
    *before, last = name.lower().split()
    stem = rf"{re.escape(last[:-1])}[a-z]?\b" if len(last) > 3 else rf"{re.escape(last)}\b"
    return rf"(?:{re.escape(' '.join(before))}\s+)?{stem}" if before else stem


def claims_name(reply: str, name: str) -> bool:
    named = _name_pattern(name)
    claim = re.compile(
        rf"\b(?:i'?m|i\s+am|this\s+is|it'?s|call\s+me|my\s+name\s+is|me,)\s+{named}"  # "I'm Brine"
        # "Captain Brine here", "Brine: ...", "Captain Brine, retired." (a self-introduction), but not
        # "Captain Brine, you were great" (addressing the old character is no claim).
        rf"|^\W*{named}\s*(?:here\b|on\s+deck\b|[:,.](?!\s*(?:you|your|thank)))",
        re.IGNORECASE,
    )
    return bool(claim.search(reply))


def mentions_name(reply: str, name: str) -> bool:
    return bool(re.search(_name_pattern(name), reply, re.IGNORECASE))
