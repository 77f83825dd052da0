"""Search terms from a chat line: the words that can find what a viewer said before.

Stop words, the character's own names and very short words are dropped: they match everything
and would rank the wrong lines first. The memory index stems English words (porter), so "cats"
finds "cat" and "named" finds "name".
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from memory.text import STOP_WORDS

__all__ = ["FIRST_PERSON_WORDS", "about_the_speaker", "query_terms"]

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# The words by which a line speaks of its author (a regex alternation; selection.py builds on it).
FIRST_PERSON_WORDS = r"i|i'?m|i'?ve|i'?d|my|me|mine|myself"
_FIRST_PERSON = re.compile(rf"\b(?:{FIRST_PERSON_WORDS})\b", re.IGNORECASE)
_MAX_TERMS = 8


def about_the_speaker(text: str) -> bool:
    """Whether a line speaks of its author ("what car do I drive?", "remember my cat?")."""
    return _FIRST_PERSON.search(text) is not None


def query_terms(text: str, *, ignore: Iterable[str] = ()) -> list[str]:
    """Distinct lower-cased words worth searching for, in the order they appear (at most 8)."""
    ignored = {word.casefold() for name in ignore for word in _WORD.findall(name)}
    terms: list[str] = []
    for word in _WORD.findall(text.replace("'", "")):
        folded = word.casefold()
        if len(folded) < 3 and not folded.isdigit():
            continue
        if folded in STOP_WORDS or folded in ignored or folded in terms:
            continue
        terms.append(folded)
        if len(terms) == _MAX_TERMS:
            break
    return terms
