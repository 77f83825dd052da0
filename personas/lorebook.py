"""Keyword-triggered lorebook entries (SillyTavern world info semantics, simplified).

An entry fires when one of its keys appears in the scanned chat lines (``scan_depth`` most recent);
``selective`` entries also need a secondary key; ``constant`` ones always fire. Fired entries are
ordered by ``insertion_order`` then ``priority`` and cut to the book's token budget.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache

from personas.card import Lorebook, LoreEntry

__all__ = ["active_entries", "entry_matches"]


@lru_cache(maxsize=4096)
def _key_pattern(key: str, case_sensitive: bool, use_regex: bool) -> re.Pattern[str] | None:
    flags = 0 if case_sensitive else re.IGNORECASE
    try:
        if use_regex:
            return re.compile(key, flags)
        # Whole words, so "wood" fires on "the wood" but not on "Hollywood".
        return re.compile(rf"(?<!\w){re.escape(key)}(?!\w)", flags)
    except re.error:
        return None  # a broken regex in someone's card must not take the bot down


def _any_key(keys: Sequence[str], text: str, entry: LoreEntry) -> bool:
    for key in keys:
        pattern = _key_pattern(key, entry.case_sensitive, entry.use_regex)
        if pattern is not None and pattern.search(text):
            return True
    return False


def entry_matches(entry: LoreEntry, text: str) -> bool:
    if not entry.enabled:
        return False
    if entry.constant:
        return True
    if not _any_key(entry.keys, text, entry):
        return False
    return not (entry.selective and entry.secondary_keys) or _any_key(entry.secondary_keys, text, entry)


def active_entries(book: Lorebook, recent_lines: Sequence[str], count_tokens: Callable[[str], int]) -> list[LoreEntry]:
    """Entries fired by the most recent ``book.scan_depth`` lines, within ``book.token_budget``."""
    if not book.entries:
        return []
    scanned = "\n".join(recent_lines[-book.scan_depth :])
    fired = [entry for entry in book.entries if entry_matches(entry, scanned)]
    if book.recursive_scanning and fired:
        # One more pass over what fired: lore that mentions other lore pulls it in (bounded: no loops).
        extra_text = "\n".join(entry.content for entry in fired)
        fired += [entry for entry in book.entries if entry not in fired and entry_matches(entry, extra_text)]
    fired.sort(key=lambda entry: (entry.insertion_order, -entry.priority))
    chosen, spent = [], 0
    for entry in fired:
        cost = count_tokens(entry.content)
        if spent + cost > book.token_budget:
            continue
        chosen.append(entry)
        spent += cost
    return chosen
