"""Keyword-triggered lorebook entries (SillyTavern world info semantics, simplified).

An entry fires when one of its keys appears in the scanned chat lines (``scan_depth`` most recent);
``selective`` entries also need a secondary key; ``constant`` ones always fire. Fired entries are
ordered by ``insertion_order`` then ``priority`` and cut to the book's token budget.

Two things keep a scan cheap whatever the card holds; both run on every reply:

- an index from words to entries: a plain key can only match where each of its words stands
  whole in the text, so only entries sharing a word with the scanned lines are tried (a
  10,000-entry book costs a dictionary look-up per word of chat, not 10,000 searches);
- ``use_regex`` keys run under the ``regex`` package's ``timeout=``: each within
  :data:`REGEX_KEY_TIMEOUT_S`, all of one scan together within :data:`REGEX_BUDGET_S`. A key
  that backtracks without end (``^(\\w+\\s?)+$``) is cut off, logged once and not tried again,
  so a card cannot freeze the bot; keys left when the scan's budget is spent wait for the next.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import regex

from personas.card import Lorebook, LoreEntry

__all__ = ["REGEX_BUDGET_S", "REGEX_KEY_TIMEOUT_S", "active_entries", "entry_matches", "folded_word_cache_fill"]

log = logging.getLogger(__name__)

# What one use_regex key may cost on one scan, and all of them together; the scan runs on the
# event loop, before every reply. Real keys take microseconds.
REGEX_KEY_TIMEOUT_S = 0.02
REGEX_BUDGET_S = 0.05
_WORD = re.compile(r"\w+")
# Words of chat folded for the key index. Chat's everyday words fit; a long stream's ever-new ones
# (names, typos, numbers) went into a 65,536-word cache that filled for hours, about 0.2 kB each
# (docs/safety.md, "Memory over a long stream").
_FOLDED_WORDS_KEPT = 4096
_slow_keys: set[str] = set()  # regex keys that once ran out of time: never tried again


class _Budget:
    """Time left for the regex keys of one scan."""

    def __init__(self, seconds: float) -> None:
        self.ends = time.monotonic() + seconds

    def left(self) -> float:
        return self.ends - time.monotonic()


@lru_cache(maxsize=4096)
def _key_pattern(key: str, case_sensitive: bool, use_regex: bool) -> re.Pattern[str] | regex.Pattern[str] | None:
    try:
        if use_regex:
            return regex.compile(key, 0 if case_sensitive else regex.IGNORECASE)
        # Whole words, so "wood" fires on "the wood" but not on "Hollywood".
        return re.compile(rf"(?<!\w){re.escape(key)}(?!\w)", 0 if case_sensitive else re.IGNORECASE)
    except (re.error, regex.error):
        return None  # a broken regex in someone's card must not take the bot down


def _regex_search(pattern: regex.Pattern[str], key: str, text: str, budget: _Budget) -> bool:
    timeout = min(REGEX_KEY_TIMEOUT_S, budget.left())
    if key in _slow_keys or timeout <= 0:
        return False
    try:
        return pattern.search(text, timeout=timeout) is not None
    except TimeoutError:
        if timeout < REGEX_KEY_TIMEOUT_S:
            return False  # the scan's budget ran out on it, not its own time: tried again next scan
        _slow_keys.add(key)
        log.warning(
            "lorebook: the regex key %r took longer than %.0f ms on one chat line; it is skipped from now on",
            key,
            REGEX_KEY_TIMEOUT_S * 1000,
        )
        return False


def _any_key(keys: Sequence[str], text: str, entry: LoreEntry, budget: _Budget) -> bool:
    for key in keys:
        pattern = _key_pattern(key, entry.case_sensitive, entry.use_regex)
        if pattern is None:
            continue
        if isinstance(pattern, re.Pattern):
            if pattern.search(text):
                return True
        elif _regex_search(pattern, key, text, budget):
            return True
    return False


def entry_matches(entry: LoreEntry, text: str, budget: _Budget | None = None) -> bool:
    if not entry.enabled:
        return False
    if entry.constant:
        return True
    budget = budget or _Budget(REGEX_BUDGET_S)
    if not _any_key(entry.keys, text, entry, budget):
        return False
    return not (entry.selective and entry.secondary_keys) or _any_key(entry.secondary_keys, text, entry, budget)


@lru_cache(maxsize=_FOLDED_WORDS_KEPT)  # chat repeats its words; the book's keys are folded once
def _fold(word: str) -> str:
    """``word`` folded so that any two words ``re.IGNORECASE`` takes as equal fold the same: per
    character, as re compares (dotted capital I and "i", long s and "s", final and plain sigma), never
    changing the length."""
    return "".join(char.lower()[:1].upper()[:1].lower()[:1] for char in word)


def folded_word_cache_fill() -> tuple[int, int]:
    """(entries, capacity) of the folded-word cache: memory grows until it is full."""
    info = _fold.cache_info()
    return info.currsize, info.maxsize or 0


def _words(text: str) -> set[str]:
    return {_fold(word) for word in _WORD.findall(text)}


def _indexing_word(key: str) -> str | None:
    """The word of a plain key that must stand whole in any text the key matches; its longest
    (the rarest, usually). A plain key is searched as ``(?<!\\w)key(?!\\w)``, so each of its
    runs of word characters is bounded by non-word characters in the text as well."""
    words = _WORD.findall(key)
    return _fold(max(words, key=len)) if words else None


@dataclass
class _KeyIndex:
    entries: list[LoreEntry]  # the list it was built from: rebuilt when the book's list is replaced
    by_word: dict[str, list[int]] = field(default_factory=dict)  # word -> positions of entries
    always: list[int] = field(default_factory=list)  # constant, regex or word-less keys: always tried

    @classmethod
    def build(cls, entries: list[LoreEntry]) -> _KeyIndex:
        index = cls(entries)
        for position, entry in enumerate(entries):
            if not entry.enabled:
                continue
            words = [_indexing_word(key) for key in entry.keys]
            if entry.constant or entry.use_regex or None in words or not words:
                index.always.append(position)
                continue
            for word in set(words):
                assert word is not None
                index.by_word.setdefault(word, []).append(position)
        return index

    def candidates(self, text: str) -> list[LoreEntry]:
        """Entries that may match ``text``, in book order; every entry that does is among them."""
        positions = set(self.always)
        for word in _words(text):
            positions.update(self.by_word.get(word, ()))
        return [self.entries[position] for position in sorted(positions)]


def _index_of(book: Lorebook) -> _KeyIndex:
    cached = book._key_index
    if (
        not isinstance(cached, _KeyIndex)
        or cached.entries is not book.entries
        or len(cached.entries) != len(book.entries)
    ):
        cached = _KeyIndex.build(book.entries)
        book._key_index = cached
    return cached


def _fired(book: Lorebook, text: str, budget: _Budget) -> list[LoreEntry]:
    return [entry for entry in _index_of(book).candidates(text) if entry_matches(entry, text, budget)]


def active_entries(book: Lorebook, recent_lines: Sequence[str], count_tokens: Callable[[str], int]) -> list[LoreEntry]:
    """Entries fired by the most recent ``book.scan_depth`` lines, within ``book.token_budget``."""
    if not book.entries:
        return []
    budget = _Budget(REGEX_BUDGET_S)
    scanned = "\n".join(recent_lines[-book.scan_depth :])
    fired = _fired(book, scanned, budget)
    if book.recursive_scanning and fired:
        # One more pass over what fired: lore that mentions other lore pulls it in (bounded: no loops).
        extra_text = "\n".join(entry.content for entry in fired)
        already = {id(entry) for entry in fired}
        fired += [entry for entry in _fired(book, extra_text, budget) if id(entry) not in already]
    fired.sort(key=lambda entry: (entry.insertion_order, -entry.priority))
    chosen, spent = [], 0
    for entry in fired:
        cost = count_tokens(entry.content)
        if spent + cost > book.token_budget:
            continue
        chosen.append(entry)
        spent += cost
    return chosen
