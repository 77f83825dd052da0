"""Search terms from a chat line: the words that can find what a viewer said before.

Stop words, the character's own names and very short words are dropped: they match everything
and would rank the wrong lines first. The memory index stems English words (porter), so "cats"
finds "cat" and "named" finds "name".
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from memory.spelling import fold_word
from memory.text import STOP_WORDS

__all__ = ["FIRST_PERSON_WORDS", "about_the_speaker", "query_terms", "without_names"]

_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*", re.UNICODE)
# The words by which a line speaks of its author (a regex alternation; selection.py builds on it).
FIRST_PERSON_WORDS = r"i|i'?m|i'?ve|i'?d|my|me|mine|myself"
# First person, or asking the character to remember ("do you remember the eclipse trip?").
_ABOUT_SPEAKER = re.compile(rf"\b(?:{FIRST_PERSON_WORDS}|rememb\w*|recall\w*)\b", re.IGNORECASE)
_MAX_TERMS = 8


def about_the_speaker(text: str) -> bool:
    """Whether a line asks about its author ("what car do I drive?", "do you remember the trip?").

    Such a question searches the asker's own memories first: notes and lines of theirs come
    before anything another viewer said.
    """
    return _ABOUT_SPEAKER.search(text) is not None


def query_terms(text: str, *, ignore: Iterable[str] = ()) -> list[str]:
    """Distinct folded words worth searching for, in the order they appear (at most 8).

    Folded as memory folds them (:func:`memory.spelling.fold_word`): "favourite" and "favorite"
    are one term, "dog's" is "dog", "three" is "3".
    """
    ignored = {word.casefold() for name in ignore for word in _WORD.findall(name)}
    terms: list[str] = []
    for word in _WORD.findall(text):
        said = word.casefold().replace("\u2019", "'").replace("'", "")
        if (len(said) < 3 and not said.isdigit()) or said in STOP_WORDS or said in ignored:
            continue
        folded = fold_word(word)
        if folded in STOP_WORDS or folded in terms:
            continue
        terms.append(folded)
        if len(terms) == _MAX_TERMS:
            break
    return terms


def without_names(text: str, names: Iterable[str]) -> str:
    """``text`` with the words of ``names`` left out ("pip, what's my job?" → "what's my job?"); itself if that is all."""
    ignored = {word.casefold() for name in names for word in _WORD.findall(name)}
    kept = _WORD.sub(lambda found: "" if found.group().casefold() in ignored else found.group(), text)
    kept = re.sub(r"^[\s,.:;!@-]+", "", " ".join(kept.split()))
    return kept or text
