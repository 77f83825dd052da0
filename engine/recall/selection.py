"""Which chat lines are embedded for recall by meaning: those that can carry a fact about their
author or the stream.

One rule, cheap enough for the per-line path (two precompiled regex searches at most): a line
addressed to the character, a line in the first person ("my", "I'm", "we", ...: the words
:func:`engine.recall.terms.about_the_speaker` looks for, and the plural ones), or a line that starts the way a statement
about oneself starts without a pronoun ("been a plumber for ten years", "born in Gdansk",
"vegan since march", "tuning in from Nairobi"). Commands, and lines too short to say anything,
are not. On the press-briefing chat it keeps 19% of the lines (docs/memory.md).

Those lines come first. Every other line that says something in words (:func:`worth_embedding`:
two words or more, not a command) is embedded too, after them, when the worker has nothing better
to do: chat drops the pronoun ("Cork born, Dublin based", "30 today!!", "ex-Navy, 22 years on
submarines") in more ways than a pattern can list, and at chat's pace (a few lines a second) the
worker embeds them all. In a flood they are the lines given up first.
"""

from __future__ import annotations

import re

from engine.output.limits import BLANKS_AS_SPACES
from engine.recall.terms import FIRST_PERSON_WORDS

__all__ = ["carries_a_fact", "worth_embedding"]

_MIN_CHARS = 8  # "lol", "hi pip", ":)" say nothing worth finding again
# The speaker's own words (terms.FIRST_PERSON_WORDS, as about_the_speaker uses) or a group they are
# in, in one search: each regex search is microseconds on a path that takes 10,000 lines a second.
_SPEAKER = re.compile(rf"\b(?:{FIRST_PERSON_WORDS}|we|we'?re|we'?ve|our|ours|us)\b", re.IGNORECASE)
# Openings of a statement about oneself with the pronoun dropped, as chat drops it.
_SELF_OPENING = re.compile(
    r"^\s*(?:just\s+|also\s+|currently\s+|still\s+|finally\s+)?(?:been|born|raised|grew up|moved|moving|living|"
    r"live|lived|work|working|worked|studying|study|tuning in|watching from|from|allergic|vegan|vegetarian|"
    r"married|engaged|single|retired|love|loving|hate|hating|got|have|had|started|starting|quit|used to|"
    r"going to|gonna|turned|turning|own|owns|play|playing|drive|driving|scared|terrified|afraid|"
    r"big fan|huge fan|fan of|can'?t stand|obsessed)\b",
    re.IGNORECASE,
)
# A word or a number in any script; a line needs two, one of them a word ("30 today!!"): emotes, a
# lone number or a lone "LMAO" say nothing to find again.
_TOKEN = re.compile(r"[^\W_]+")
_LETTER = re.compile(r"[^\W\d_]")


def carries_a_fact(text: str, *, addressed: bool) -> bool:
    """Whether a viewer's line may hold something about its author or the stream worth recalling."""
    if len(text) < _MIN_CHARS or text.startswith("!"):
        return False
    return addressed or _SPEAKER.search(text) is not None or _SELF_OPENING.match(text) is not None


def worth_embedding(text: str) -> bool:
    """Whether a line says enough in words to be worth a vector once the lines that carry a fact are done."""
    text = text.translate(BLANKS_AS_SPACES).strip()  # Hangul fillers count as letters to a regex; they say nothing
    if len(text) < _MIN_CHARS or text.startswith("!"):
        return False
    tokens = _TOKEN.finditer(text)
    return next(tokens, None) is not None and next(tokens, None) is not None and _LETTER.search(text) is not None
