"""Search terms from a chat line: the words that can find what a viewer said before.

Stop words, the character's own names and very short words are dropped: they match everything
and would rank the wrong lines first. The memory index stems English words (porter), so "cats"
finds "cat" and "named" finds "name".
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["about_the_speaker", "query_terms"]

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_FIRST_PERSON = re.compile(r"\b(?:i|i'?m|i'?ve|i'?d|my|me|mine|myself)\b", re.IGNORECASE)
_MAX_TERMS = 8

# Function words and chat filler. Question words go too: "what is my cat called" must search
# for "cat" and "called", not for every line with "what" in it.
_STOP_WORDS = frozenset(
    """
    a about after again ah all also am an and any are arent as at be because been before being both
    but by can cant could did didnt do does doesnt doing done dont down during each else even ever
    few for from get got had has have having he hello her here heres hers hey hi him his hmm how
    hows i id if ill im in into is isnt it itll its ive just know let lets like lmao lol me more
    most much my myself no nor not now of off oh ok okay omg on once one only or other our ours out
    over own please pls plz really remember right said same say see she should so some still such
    tell than thank thanks that thats the their theirs them then there theres these they thing think
    this those through to too u uh um under until up ur us very want was wasnt we were what whats
    when whens where wheres which while who whom whos whose why whys will with wont would yeah yes
    yet you youd youll your youre yours yourself
    """.split()  # noqa: SIM905 - a word list reads better as prose
)


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
        if folded in _STOP_WORDS or folded in ignored or folded in terms:
            continue
        terms.append(folded)
        if len(terms) == _MAX_TERMS:
            break
    return terms
