"""Was the character's name heard? Matched by how it sounds, not how it is spelt.

A small recognizer hears "Pip" as "Bib" or "Pipp": names are compared by a sound key in which
voiced and voiceless pairs (b/p, d/t, g/k, v/f, z/s) are one class, vowels are reduced to front
or back, and doubled letters are one. Short names must match their key exactly inside a clause (a
looser rule wakes on "pop" and "bit"), but may differ by one sound where a name is called: first
or last in a clause, or after "hey", "okay" and the like ("Rib, remind me", "hey babe"). Longer
names may differ by one sound anywhere. The false-wake rate on sentences
that do not name the character is measured in tests/test_hearing.py and docs/hearing.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["names_heard", "sound_key"]

_CLASSES = {
    **dict.fromkeys("bp", "P"),
    **dict.fromkeys("dt", "T"),
    **dict.fromkeys("gkcq", "K"),
    **dict.fromkeys("fv", "F"),
    **dict.fromkeys("szx", "S"),
    **dict.fromkeys("jy", "J"),
    **dict.fromkeys("mn", "N"),
    "l": "L",
    "r": "R",
    "w": "W",
    "h": "",
    **dict.fromkeys("ie", "I"),  # front vowels
    **dict.fromkeys("aou", "A"),  # back and open vowels
}
_DIGRAPHS = (("ph", "f"), ("ck", "k"), ("th", "t"), ("sh", "s"), ("ch", "j"), ("ee", "i"), ("ea", "i"))
_WORD = re.compile(r"[a-z]+")
_CLAUSE = re.compile(r"[,.;:!?]+")
# Words a name follows when it is called.
_GREETINGS = frozenset({"hey", "hi", "hello", "ok", "okay", "so", "alright", "right", "yo", "oh", "well", "thanks"})
_LOOSE_FROM = 5  # keys this long may differ by one sound


def sound_key(word: str) -> str:
    """ "Pip" → "PIP", "Bib" → "PIP", "Pippa" → "PIPA"."""
    spelt = word.lower()
    for digraph, sound in _DIGRAPHS:
        spelt = spelt.replace(digraph, sound)
    if len(spelt) > 3 and spelt.endswith("e") and spelt[-2] not in "aeiou":
        spelt = spelt[:-1]  # a final silent e ("Sparkle" heard as "Sparkel")
    key = ""
    for letter in spelt:
        sound = _CLASSES.get(letter, "")
        if sound and not key.endswith(sound):
            key += sound
    return key


def _within_one(a: str, b: str) -> bool:
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def names_heard(text: str, names: Iterable[str]) -> bool:
    """Whether ``text`` contains one of ``names`` (a name of several words counts as one)."""
    clauses = [_WORD.findall(clause) for clause in _CLAUSE.split(text.lower())]
    for name in names:
        name_words = _WORD.findall(name.lower())
        if name_words and any(_in_clause(words, name_words) for words in clauses if words):
            return True
    return False


def _in_clause(words: list[str], name_words: list[str]) -> bool:
    wanted = sound_key("".join(name_words))
    span = len(name_words)
    # The name as one word, and as heard split in two ("Pi pa" for "Pippa").
    for size in {span, span + 1}:
        for start in range(len(words) - size + 1):
            heard = sound_key("".join(words[start : start + size]))
            if heard == wanted:
                return True
            # Where a name is called ("Rib, remind me", "hey babe"), one wrong sound is forgiven.
            calling = start == 0 or start + size == len(words) or words[start - 1] in _GREETINGS
            if len(wanted) >= _LOOSE_FROM and _within_one(heard, wanted):
                return True
            if calling and _called_as(heard, wanted):
                return True
    return False


def _called_as(heard: str, wanted: str) -> bool:
    """One sound off, as recognizers mishear a called name: the start ("Rib", "Flip" for "Pip")
    or the vowel ("babe"); never shorter ("be") nor a different ending ("bit")."""
    if len(heard) < len(wanted) or not _within_one(heard, wanted):
        return False
    rhymes = heard[-2:] == wanted[-2:]
    same_consonants = _consonants(heard) == _consonants(wanted)
    return rhymes or same_consonants


def _consonants(key: str) -> str:
    return "".join(sound for sound in key if sound not in "IA")
