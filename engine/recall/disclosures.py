"""Self-disclosures: what viewers say about themselves, noticed without a model call.

"my name is Sam", "I'm from Lisbon", "my dog is called Rex", "I love speedruns", "I work as a
nurse", "my birthday is May 3rd" each become a note in the viewer's own words. Patterns live in
one table per language, so another language is one more entry in :data:`PATTERNS`. A note is the
clause the viewer wrote, cut at the end of its sentence: it is shown to the model quoted, as data,
never as an instruction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from memory.spelling import fold_word

__all__ = ["PATTERNS", "Disclosure", "find_disclosures", "note_words"]

_MAX_NOTE_CHARS = 100
# Kinds whose subject is often said before the pattern ("Go Celtics!! been a fan since I was a
# kid"): the note keeps the line from its start.
_WHOLE_LINE_KINDS = frozenset({"fan"})
_SENTENCE_END = re.compile(r"[.!?;]|\s+(?:but|and then|lol|lmao)\s", re.IGNORECASE)


# Kinds with one current answer: a newer note of the kind supersedes an older one ("I live in
# York", then "actually I moved to Leeds"). Likes, pets, family and the rest add up instead.
_SINGLE_VALUED_KINDS = frozenset({"name", "origin", "home", "job", "birthday", "age", "education"})
_FAVOURITE_THING = re.compile(r"\bfav(?:ou?rite)?\s+(\w+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Disclosure:
    kind: str  # name, origin, home, pet, family, likes, dislikes, job, birthday, age, favourite
    text: str  # the viewer's own words, from the pattern's start to the end of the clause

    @property
    def topic(self) -> str | None:
        """What this answers when only one answer can be current: "home", "favourite game"; else None."""
        if self.kind in _SINGLE_VALUED_KINDS:
            return self.kind
        thing = _FAVOURITE_THING.search(self.text) if self.kind == "favourite" else None
        return f"favourite {fold_word(thing.group(1))}" if thing else None


@dataclass(frozen=True, slots=True)
class _Language:
    hint: re.Pattern[str]  # cheap test that a line may hold a disclosure at all
    patterns: tuple[tuple[str, re.Pattern[str]], ...]


def _patterns(*pairs: tuple[str, str]) -> tuple[tuple[str, re.Pattern[str]], ...]:
    return tuple((kind, re.compile(pattern, re.IGNORECASE)) for kind, pattern in pairs)


_EN_SUBJECT = r"\b(?:i'?m|i am|im)\b"
# "I" as the subject of a statement, not of a question ("what food do I love most").
_EN_I = r"(?<!do )(?<!did )(?<!can )(?<!would )(?<!should )(?<!could )\bi "
PATTERNS: dict[str, _Language] = {
    "en": _Language(
        hint=re.compile(
            r"\b(?:my|i'?m|i am|call me|fan|studying|moved to|relocated to|i (?:live|grew|have|work|love|adore|like|enjoy|hate|can'?t|"
            r"dislike|really|absolutely|study|knit|crochet|paint|draw|bake|sew|garden|climb|surf|skate|hike|collect|"
            r"brew))\b",
            re.IGNORECASE,
        ),
        patterns=_patterns(
            ("name", r"\bmy name(?:'s| is)\s+\S+"),
            ("name", r"\bcall me\s+(?-i:[A-Z])\S*"),
            ("origin", _EN_SUBJECT + r"\s+(?:originally\s+)?from\s+\S+"),
            ("home", _EN_I + r"(?:live|grew up) in\s+\S+"),
            ("home", r"\bi(?:'ve| have)? (?:just |recently |finally )?(?:moved|relocated) to\s+\S+"),
            (
                "pet",
                r"\bmy (?:\w+ )?(?:cat|dog|puppy|kitten|bird|parrot|rabbit|bunny|hamster|fish|snake|lizard|"
                r"turtle|horse|pet)s? (?:is |are )?(?:called|named)\s+\S+",
            ),
            (
                "pet",
                _EN_I + r"have (?:a|an|one|two|three|four|\d+) [\w ]{0,20}?(?:cats?|dogs?|rabbits?|bunnies|"
                r"hamsters?|birds?|parrots?|fish|snakes?|lizards?|turtles?|horses?|pets?|kids?|sons?|daughters?)\b"
                r"(?: (?:called|named)\s+\S+)?",
            ),
            (
                "family",
                r"\bmy (?:wife|husband|partner|fianc[eé]e?|girlfriend|boyfriend|son|daughter|brother|sister|mom|"
                r"mum|dad|kid)(?:'s name is| is called| is named| named| called)?\s+(?-i:[A-Z])\w+",
            ),
            ("fan", r"\bfan of\s+\S+|(?-i:[A-Z])\w+ fan\b|\bbeen a (?:\w+ )?fan\b"),
            ("education", r"\b(?:i'?m |i am )?studying\s+\S+|" + _EN_I + r"study\s+\S+|\bmy (?:degree|major) is\s+\S+"),
            (
                "hobby",
                _EN_I + r"(?:knit|crochet|paint|draw|bake|sew|garden|climb|surf|skate|hike|collect|brew)\w*\s+\S+|"
                r"\bmy hobby is\s+\S+",
            ),
            ("job", _EN_I + r"work (?:as|at|for|in)\s+\S+"),
            (
                "job",
                _EN_SUBJECT + r"\s+an? (?:\w+ )?(?:nurse|teacher|developer|programmer|engineer|doctor|student|"
                r"artist|chef|cook|driver|designer|writer|streamer|lawyer|mechanic|farmer|scientist)\b",
            ),
            ("birthday", r"\bmy birthday(?:'s| is)\s+\S+"),
            ("age", _EN_SUBJECT + r"\s+\d{1,2}\s*(?:years? old|yo|y/o)\b"),
            (
                "likes",
                _EN_I
                + r"(?:really |absolutely )?(?:love|adore|like|enjoy)\s+(?!(?:you|ya|u|it|this|that|how|when|what|the way|her|him|them|his|seeing)\b)\S+",
            ),
            (
                "dislikes",
                _EN_I
                + r"(?:really |absolutely )?(?:hate|can'?t stand|dislike)\s+(?!(?:you|ya|u|it|this|that|how|when|what|the way|her|him|them|his|seeing)\b)\S+",
            ),
            ("favourite", r"\bmy fav(?:ou?rite)? \w+ (?:is|are)\s+\S+"),
        ),
    ),
}


def find_disclosures(text: str, languages: tuple[str, ...] = ("en",)) -> list[Disclosure]:
    """Each self-disclosure in ``text``, in order; most lines have none and cost one regex search."""
    found: list[Disclosure] = []
    for code in languages:
        language = PATTERNS.get(code)
        if language is None or not language.hint.search(text):
            continue
        for kind, pattern in language.patterns:
            match = pattern.search(text)
            start = 0 if kind in _WHOLE_LINE_KINDS else match.start() if match is not None else 0
            clause = _clause(text, start) if match is not None else None
            if clause:
                found.append(Disclosure(kind, clause))
    return _without_overlaps(found)


def note_words(text: str) -> str:
    """A whole line as a note: its words, spaces folded, cut to the length of a pattern note."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_NOTE_CHARS else flat[:_MAX_NOTE_CHARS].rsplit(" ", 1)[0]


def _clause(text: str, start: int) -> str | None:
    """The words from ``start`` to the end of their clause; None inside a question."""
    rest = text[start:]
    end = _SENTENCE_END.search(rest)
    terminator = end.group(0) if end is not None else rest.rstrip()[-1:]
    if terminator == "?":
        return None
    clause = rest[: end.start()] if end else rest
    return " ".join(clause.split())[:_MAX_NOTE_CHARS].rstrip(" ,")


def _without_overlaps(found: list[Disclosure]) -> list[Disclosure]:
    """One note per clause: "I have a cat called Miso" matches two patterns but says one thing."""
    kept: list[Disclosure] = []
    for disclosure in found:
        if not any(disclosure.text in other.text or other.text in disclosure.text for other in kept):
            kept.append(disclosure)
    return kept
