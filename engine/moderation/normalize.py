"""Chat text folded into a form for *matching* only; the stored and prompted text stays as sent.

Tricks viewers use to slip words past a filter, and what undoes them here:

- fullwidth / mathematical / circled letters (ｉｇｎｏｒｅ, 𝐢𝐠𝐧𝐨𝐫𝐞)  → Unicode NFKC
- zero-width and other invisible characters (ig\u200bnore)          → removed (category Cf)
- letters and symbols drawn as a blank (Hangul filler U+3164, the
  Braille blank U+2800: ``output.limits``)                          → a plain space
- accents and stacked combining marks (ïgnörë, Zalgo)               → removed (categories Mn, Me)
- Cyrillic/Greek look-alikes (іgnоrе with Cyrillic і, о, е)        → folded to Latin
- Unicode tag characters (invisible ASCII smuggled in U+E0020–E007E)→ decoded to the ASCII they hide
- leetspeak (1gn0r3) and spelled-out words (i g n o r e)            → :func:`matching_words`

:func:`normalize_for_matching` is idempotent (the fuzz tests check it), so normalising twice
never changes what a rule matches.

:func:`normalise_text` is the lighter fold the reply scheduler uses to spot a line repeated or
pasted by many chatters (case, punctuation and spacing only: emoji and words still count).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from engine.output.limits import BLANK_LOOKALIKES

__all__ = [
    "fold_leet",
    "matching_words",
    "normalise_text",
    "normalize_for_matching",
    "squash",
    "word_sequence",
    "word_sequence_cache",
]

# Look-alikes that NFKC leaves alone (it only folds compatibility forms). Lower case only: the
# text is case-folded first. A small hand-picked table, not the full Unicode confusables list.
_CONFUSABLES = str.maketrans(
    {
        # Cyrillic
        "а": "a",
        "в": "b",
        "е": "e",
        "ё": "e",
        "з": "3",
        "і": "i",
        "ї": "i",
        "ј": "j",
        "к": "k",
        "м": "m",
        "н": "h",
        "о": "o",
        "р": "p",
        "с": "c",
        "т": "t",
        "у": "y",
        "х": "x",
        "ѕ": "s",
        "ԁ": "d",
        "һ": "h",
        "ԛ": "q",
        "ԝ": "w",
        "ь": "b",
        "г": "r",
        "п": "n",
        "л": "n",
        # Greek
        "α": "a",
        "β": "b",
        "ε": "e",
        "η": "n",
        "ι": "i",
        "κ": "k",
        "μ": "u",
        "ν": "v",
        "ο": "o",
        "ρ": "p",
        "τ": "t",
        "υ": "u",
        "χ": "x",
        "ω": "w",
        "ς": "s",
        "σ": "o",
        # Latin oddities
        "ı": "i",
        "ł": "l",
        "ø": "o",
        "đ": "d",
        "ħ": "h",
        "ŀ": "l",
        "ſ": "s",
    }
)
_DROPPED_CATEGORIES = frozenset({"Mn", "Me", "Cf"})
_TAG_BLOCK = range(0xE0020, 0xE007F)  # tag characters mirror printable ASCII, invisibly
_MAX_PASSES = 4

_LEET = str.maketrans(
    {
        "0": "o",
        "1": "i",
        "3": "e",
        "4": "a",
        "5": "s",
        "7": "t",
        "8": "b",
        "9": "g",
        "@": "a",
        "$": "s",
        "!": "i",
        "|": "l",
        "+": "t",
        "€": "e",
    }
)
_TOKEN = re.compile(r"[\w@$!|+€]+")
_SPELLED_OUT = re.compile(r"(?<!\S)\S(?: \S){2,}(?!\S)")  # words never contain spaces
_ASCII_NON_ALNUM = re.compile(r"[^a-z0-9]+")  # normalised text is lower case


def _char_for_matching(char: str) -> str:
    code = ord(char)
    if code in _TAG_BLOCK:
        return chr(code - 0xE0000)
    if char in BLANK_LOOKALIKES:
        return " "
    category = unicodedata.category(char)
    if category in _DROPPED_CATEGORIES:
        return ""
    if category.startswith(("C", "Z")):  # controls, separators, odd spaces: one plain space
        return " "
    return char


class _MatchingTable(dict[int, str]):
    """str.translate table for :func:`_char_for_matching`, filled lazily per code point: every
    chat line passes through here, and translate() runs in C once a character is cached."""

    def __missing__(self, codepoint: int) -> str:
        replacement = self[codepoint] = _char_for_matching(chr(codepoint))
        return replacement


_MATCHING_TABLE = _MatchingTable()


def _one_pass(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    visible = decomposed.translate(_MATCHING_TABLE)
    folded = visible.casefold().translate(_CONFUSABLES)
    return " ".join(unicodedata.normalize("NFKC", folded).split())


# Plain ASCII (most chat) needs none of the Unicode work: only control characters become spaces.
_ASCII_CONTROLS = str.maketrans({code: " " for code in [*range(0x20), 0x7F]})


@lru_cache(maxsize=4096)  # several rules normalise the same line; copypasta repeats it
def normalize_for_matching(text: str) -> str:
    """NFKC, case-folded, invisible characters and accents removed, look-alikes folded to Latin.

    One pass is not always a fixed point (case folding can produce characters NFKC changes
    again), so passes repeat until nothing changes; real text settles after one or two.
    """
    if text.isascii():  # what the passes do to ASCII, in one step
        return " ".join(text.translate(_ASCII_CONTROLS).lower().split())
    return _unicode_passes(text)


def _unicode_passes(text: str) -> str:
    current = text
    for _ in range(_MAX_PASSES):
        following = _one_pass(current)
        if following == current:
            return following
        current = following
    return current


def fold_leet(word: str, *, numbers_too: bool = False) -> str:
    """``n00b`` → ``noob``; words without any letter (``2024``) are left alone unless ``numbers_too``."""
    folded = word.translate(_LEET)
    if folded == word or numbers_too or any(map(str.isalpha, word)):
        return folded
    return word


def _join_spelled_out(words: Sequence[str]) -> list[str]:
    """Runs of three or more one-letter words (``i g n o r e``) also count as the joined word."""
    if len(words) < 3:
        return []
    return [run.replace(" ", "") for run in _SPELLED_OUT.findall(" ".join(words))]


def word_sequence(text: str, *, numbers_too: bool = False) -> list[str]:
    """The normalised, leet-folded words of ``text`` in order."""
    return list(_word_tuple(text, numbers_too))


@lru_cache(maxsize=4096)  # input and output rules ask for the same line's words several times
def _word_tuple(text: str, numbers_too: bool) -> tuple[str, ...]:
    normal = normalize_for_matching(text)
    tokens = _TOKEN.findall(normal)
    if "!" in normal or "|" in normal:
        # "word!" is a word and an exclamation, not "wordi": only symbols inside a word are leet.
        tokens = [token.rstrip("!|") or token for token in tokens]
    # Most lines have no leet characters and no underscores: skip the per-word work then.
    if normal.translate(_LEET) != normal:
        tokens = [fold_leet(token, numbers_too=numbers_too) for token in tokens]
    if "_" in normal:
        tokens = [word for word in (token.strip("_") for token in tokens) if word]
    return tuple(tokens)


def word_sequence_cache() -> Any:
    """The cached word splitter, for :meth:`Moderator.cache_fill` (its ``cache_info()`` only)."""
    return _word_tuple


@lru_cache(maxsize=4096)  # the slur list and banned words both ask, for every line
def matching_words(text: str) -> tuple[str, ...]:
    """The words a word rule is matched against: :func:`word_sequence` plus spelled-out words joined."""
    words = _word_tuple(text, False)
    return words + tuple(_join_spelled_out(words))


def squash(text: str, *, leet: bool = False) -> str:
    """Only the letters and digits of the normalised text: spacing and punctuation tricks vanish.

    With ``leet`` digits count as the letters they imitate (both sides of a comparison must agree).
    """
    normal = normalize_for_matching(text)
    # For ASCII (what normalised chat mostly is), a regex does in C what the filter does per character.
    squashed = _ASCII_NON_ALNUM.sub("", normal) if normal.isascii() else "".join(filter(str.isalnum, normal))
    return fold_leet(squashed, numbers_too=True) if leet else squashed


# -- duplicate detection -----------------------------------------------------------------------


class _PunctuationTable(dict[int, int | None]):
    """str.translate table that deletes Unicode punctuation, filled lazily per code point."""

    def __missing__(self, codepoint: int) -> int | None:
        kept = None if unicodedata.category(chr(codepoint)).startswith("P") else codepoint
        self[codepoint] = kept
        return kept


_STRIP_PUNCTUATION = _PunctuationTable()


def normalise_text(text: str) -> str:
    """Case, punctuation and spacing do not make a pasted line new; emoji and words do."""
    # translate() runs in C once a code point is cached: this is on the per-message hot path.
    return " ".join(text.casefold().translate(_STRIP_PUNCTUATION).split())
