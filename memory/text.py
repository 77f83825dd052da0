"""Text SQLite can store, and the words that say nothing about a viewer.

:func:`storable_text` is the one rule for what a chat line may hold on its way into memory.

Python strings may carry lone UTF-16 surrogates (a JSON ``"\\ud800"`` escape from a platform or a
transcript, a terminal's undecodable bytes read with ``surrogateescape``); SQLite stores UTF-8, and
encoding such a string fails. :func:`storable_text` keeps every character that can be stored,
joins surrogate pairs that were split into two characters, and puts U+FFFD where a lone one stood.
"""

from __future__ import annotations

__all__ = ["STOP_WORDS", "is_storable", "storable_text"]

# Function words and chat filler: words that say nothing about who said them. Recall drops them
# from searches (engine.recall.terms) and a forget never counts them as a viewer's own (memory.forget).
# Question words go too: "what is my cat called" must search
# for "cat" and "called", not for every line with "what" in it.
STOP_WORDS = frozenset(
    """
    a about after again ah all also am an and any are arent as at be because been before being both
    but by can cant could did didnt do does doesnt doing done dont down during each else even ever
    few for from get got had has have having he hello her here heres hers hey hi him his hmm how
    hows i id if ill im in into is isnt it itll its ive just know let lets like lmao lol me more
    most much my myself no nor not now of off oh ok okay omg on once one only or other our ours out
    over own please pls plz really recall remember right said same say see she should so some still such
    tell than thank thanks that thats the their theirs them then there theres these they thing think told
    this those through to too u uh um under until up ur us very want was wasnt we were what whats
    when whens where wheres which while who whom whos whose why whys will with wont would yeah yes
    yet you youd youll your youre yours yourself
    """.split()  # noqa: SIM905 - a word list reads better as prose
)


def is_storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def storable_text(text: str) -> str:
    """``text`` unchanged when it can be stored, else with each lone surrogate as U+FFFD."""
    if is_storable(text):
        return text
    # UTF-16 with surrogatepass joins a valid high+low pair back into one character; decoding with
    # "replace" turns each surrogate left alone into U+FFFD.
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
