"""One word however a viewer spelled it: the folding that full-text recall matches on.

Recall must not care whether "favourite" was said and "favorite" asked, "three cats" said and
"3 cats" asked, or "my dog's name" asked about "my dog is called Rex". :func:`fold_word` gives a
word's one form (lower case, possessive ``'s`` dropped, British spelling as American, number
words as digits); :func:`spellings` gives every form of a folded word that may stand in the
index, since the FTS5 index keeps the text as it was written (porter-stemmed, not folded);
:func:`holds` says whether folded words contain a search term. Questions, recalled lines and
notes are all folded with these, so both sides of a search agree.

The British stems are a table of common words, not a rule on endings: "-our" → "-or" would turn
"four", "hour" and "your" into non-words that match nothing.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["fold_text", "fold_word", "holds", "spellings"]

_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*", re.UNICODE)
# British stem → American stem; a stem also folds the words it begins ("colours", "favourites").
_BRITISH_STEMS = {
    "aeroplane": "airplane", "aluminium": "aluminum", "analys": "analyz", "apologis": "apologiz",
    "armour": "armor", "behaviour": "behavior", "calibre": "caliber", "cancell": "cancel",
    "catalogue": "catalog", "centre": "center", "cheque": "check", "colour": "color", "cosy": "cozy",
    "defence": "defense", "dialogue": "dialog", "endeavour": "endeavor", "favour": "favor",
    "fibre": "fiber", "flavour": "flavor", "glamour": "glamor", "harbour": "harbor",
    "honour": "honor", "humour": "humor", "jewellery": "jewelry", "labour": "labor", "licence": "license",
    "litre": "liter", "manoeuvr": "maneuver", "meagre": "meager", "metre": "meter", "mould": "mold",
    "moustache": "mustache", "neighbour": "neighbor", "odour": "odor", "offence": "offense",
    "organis": "organiz", "paediatric": "pediatric", "parlour": "parlor", "plough": "plow",
    "practis": "practic", "pyjama": "pajama", "realis": "realiz",
    "recognis": "recogniz", "rumour": "rumor", "saviour": "savior", "savour": "savor", "sceptic": "skeptic",
    "sombre": "somber", "specialis": "specializ", "splendour": "splendor", "storey": "story",
    "theatre": "theater", "travell": "travel", "tyre": "tire", "vapour": "vapor", "vigour": "vigor",
}  # fmt: skip
# Short words fold only whole (with a plural): as stems they would begin unrelated words ("mumble").
_BRITISH_WORDS = {
    "arse": "ass", "grey": "gray", "maths": "math", "mum": "mom", "mummy": "mommy", "programme": "program",
    "tonne": "ton",
}  # fmt: skip
_NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]
    )
} | {word: str(value) for value, word in zip(range(30, 100, 10), "thirty forty fifty sixty seventy eighty ninety".split(), strict=True)}  # noqa: SIM905  # fmt: skip
_ORDINAL_WORDS = {
    "first": "1st", "second": "2nd", "third": "3rd", "fourth": "4th", "fifth": "5th", "sixth": "6th",
    "seventh": "7th", "eighth": "8th", "ninth": "9th", "tenth": "10th", "eleventh": "11th", "twelfth": "12th",
}  # fmt: skip
_STEM_LENGTHS = sorted({len(stem) for stem in _BRITISH_STEMS}, reverse=True)
_AMERICAN_STEMS = {american: british for british, american in _BRITISH_STEMS.items()}
_AMERICAN_WORDS = {american: british for british, american in _BRITISH_WORDS.items()}
_WORDS_FOR = {digits: word for word, digits in (_NUMBER_WORDS | _ORDINAL_WORDS).items()}


@lru_cache(maxsize=8192)  # chat repeats its words; a question folds the same few words again
def fold_word(word: str) -> str:
    """``"Favourite"`` → ``"favorite"``, ``"dog's"`` → ``"dog"``, ``"Three"`` → ``"3"``."""
    folded = word.casefold().replace("\u2019", "'")
    if folded.endswith("'s"):
        folded = folded[:-2]
    folded = folded.replace("'", "")
    if folded in _NUMBER_WORDS or folded in _ORDINAL_WORDS:
        return _NUMBER_WORDS.get(folded) or _ORDINAL_WORDS[folded]
    plural = folded.endswith("s") and folded[:-1] in _BRITISH_WORDS
    if folded in _BRITISH_WORDS or plural:
        return _BRITISH_WORDS[folded[:-1] if plural else folded] + ("s" if plural else "")
    for length in _STEM_LENGTHS:
        american = _BRITISH_STEMS.get(folded[:length])
        if american is not None:
            return american + folded[length:]
    return folded


def fold_text(text: str) -> list[str]:
    """Every word of ``text``, folded, in order."""
    return [fold_word(word) for word in _WORD.findall(text)]


def spellings(folded: str) -> tuple[str, ...]:
    """Each way a folded word may be written in stored text: itself first, then its variants."""
    variants = [folded]
    if folded in _WORDS_FOR:
        variants.append(_WORDS_FOR[folded])
    plural = folded.endswith("s") and folded[:-1] in _AMERICAN_WORDS
    if folded in _AMERICAN_WORDS or plural:
        variants.append(_AMERICAN_WORDS[folded[:-1] if plural else folded] + ("s" if plural else ""))
    for american, british in _AMERICAN_STEMS.items():
        if folded.startswith(american) and fold_word(british + folded[len(american) :]) == folded:
            variants.append(british + folded[len(american) :])
    return tuple(dict.fromkeys(variants))


def _stem(term: str) -> str:
    """The start of a folded term that its other forms share ("cats", "named" → "cat", "nam")."""
    if term.isdigit() or len(term) <= 3:
        return term
    if len(term) == 4:
        return term[:-1] if term.endswith("s") else term
    return term[: max(4, len(term) - 2)]


def holds(words: list[str] | set[str] | frozenset[str], term: str) -> bool:
    """Whether folded ``words`` contain ``term`` in some form: a word starting with its stem.

    The index stems English words (porter), so "cats" finds "cat" there; here a term's first
    letters stand in for that. Digits must match whole: "3" is not in "13".
    """
    start = _stem(term)
    if start.isdigit():
        return start in words
    return any(word.startswith(start) for word in words)
