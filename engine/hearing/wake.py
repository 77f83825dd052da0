"""Was the character's name heard? Matched by how it sounds, not how it is spelt.

A small recognizer hears "Pip" as "Bib" or "Pipp": names are compared by a sound key in which
voiced and voiceless pairs (b/p, d/t, g/k, v/f, z/s) are one class, vowels are reduced to front
or back, and doubled letters are one. Short names must match their key exactly, except where a
name is *called*, where one sound may be off ("Rib, remind me", "hey babe"): a clause of its own
("Dip, do you like it?", "…, babe?"), after the greeting that opens the clause ("hey babe"), or
first in the clause and followed by a request or question ("Rib remind me", "Fib can you"). First in a clause alone is not enough: talk starts with words one
sound from a short name ("Sip of water", "Keep it down", "Tip of the day"). Longer names may differ
by one sound anywhere. The wakes and false wakes are measured in bench/hearing_wer.py (tuned on
streamer_sentences.tsv and wake_dev_sentences.tsv only) and given in docs/hearing.md.
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
# Words that start what the host asks of a called name, next after it ("Rib remind me", "Fib can
# you"): auxiliaries and modals, question words, pronouns, and requests made to a co-host.
# fmt: off
_REQUEST_STARTS = frozenset({
    "are", "is", "am", "was", "were", "do", "does", "did", "can", "could", "will", "would", "should", "shall",
    "may", "might", "have", "has", "had",
    "what", "who", "which", "when", "where", "why", "how",
    "you", "your", "i", "im", "we", "let", "lets", "please",
    "tell", "say", "give", "remind", "read", "pick", "make", "look", "help", "check", "wave", "sing", "show",
    "name", "guess", "play", "stop", "thank", "find", "count",
})
# fmt: on
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
    clauses = [words for clause in _CLAUSE.split(text.lower()) if (words := _WORD.findall(clause))]
    for name in names:
        name_words = _WORD.findall(name.lower())
        if name_words and any(_in_clause(words, name_words) for words in clauses):
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
            if len(wanted) >= _LOOSE_FROM and _within_one(heard, wanted):
                return True
            if _called(words[:start], words[start + size :]) and _called_as(heard, wanted):
                return True
    return False


def _called(before: list[str], after: list[str]) -> bool:
    """Whether a word with ``before`` and ``after`` it in its clause is where a name is called."""
    if before:
        return all(word in _GREETINGS for word in before)  # "hey babe", "okay so dip"
    return not after or _asks(after[0])  # "Dip, do…", "…, babe?", "Rib remind me"


def _asks(word: str) -> bool:
    return word in _REQUEST_STARTS or (word.endswith("s") and word[:-1] in _REQUEST_STARTS)  # "Rib reminds me"


def _called_as(heard: str, wanted: str) -> bool:
    """One sound off, as recognizers mishear a called name: the start ("Rib", "Dip" for "Pip")
    or the vowel ("babe"); never shorter ("be") nor a different ending ("bit")."""
    if len(heard) < len(wanted) or not _within_one(heard, wanted):
        return False
    rhymes = heard[-2:] == wanted[-2:]
    same_consonants = _consonants(heard) == _consonants(wanted)
    return rhymes or same_consonants


def _consonants(key: str) -> str:
    return "".join(sound for sound in key if sound not in "IA")
