"""Notes by meaning: a line that says something about its author in words no pattern knows.

The pattern table (:mod:`engine.recall.disclosures`) is the fast path and sees every line. A line
the embedding worker embeds anyway (one that may carry a fact, :mod:`engine.recall.selection`) is
also compared, at no extra model call, with prototypes: short statements of the kinds of thing
viewers tell about themselves (work, home, family, diet, fears, teams…) and of ordinary chat that
tells nothing (reactions, opinions about the stream, questions). A line becomes a note when its
nearest prototype is a disclosure, at a cosine of at least :data:`NOTE_AT_LEAST`, and nearer than
the nearest chat prototype by :data:`NOTE_MARGIN`. The prototypes are written for this module, in
no set's phrasing; the two thresholds were tuned on ``tests/data/recall_meaning_dev.jsonl`` only
(positives) and the press-briefing chat (negatives), see docs/memory.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.recall.embedding import Vectors

__all__ = ["NOTE_AT_LEAST", "NOTE_MARGIN", "DisclosurePrototypes", "MeaningVerdict", "prototype_texts"]

NOTE_AT_LEAST = 0.3
NOTE_MARGIN = 0.2

# kind → statements of it. Kinds with one current answer carry a topic (a newer note supersedes).
DISCLOSURE_PROTOTYPES: dict[str, tuple[str, ...]] = {
    "job": (
        "I work as an accountant",
        "I'm a bus driver",
        "my job is repairing cars",
        "I do night shifts at the hospital",
        "I've been an electrician for fifteen years",
        "I teach maths at a secondary school",
    ),
    "home": ("I live in a small town by the sea", "I moved to the city last year", "I'm based in Berlin these days"),
    "origin": ("I'm from Brazil originally", "born and raised in Texas", "I grew up on a farm in Ireland"),
    "education": ("I study chemistry at university", "I'm learning German", "I'm doing a nursing degree"),
    "hobby": (
        "I knit in the evenings",
        "I go rock climbing every weekend",
        "I play the cello",
        "I collect vinyl records",
        "I run marathons",
    ),
    "diet": ("I'm vegetarian", "I don't eat meat anymore", "I'm allergic to peanuts", "I can't have gluten"),
    "health": ("I have asthma", "I'm deaf in one ear", "I broke my leg last month"),
    "fear": ("I'm afraid of heights", "I'm terrified of dogs", "flying scares me to death"),
    "fan": ("I support Liverpool", "I'm a huge fan of the Lakers", "die-hard Yankees supporter"),
    "family": (
        "my wife is called Anna",
        "I have two sons",
        "my brother is a pilot",
        "I'm a mum of three",
        "my grandad turned ninety",
    ),
    "pet": ("I have a dog named Max", "my cat is called Luna", "we've got two hamsters"),
    "age": ("I'm 25 years old", "I turned forty today"),
    "birthday": ("my birthday is in June", "it's my birthday next week"),
    "travel": ("I'm going to Japan next month", "we're flying to Spain on holiday", "I visited Egypt last year"),
    "likes": ("my favourite band is Queen", "I love horror movies", "I'm obsessed with puzzle games"),
}  # fmt: skip
CHAT_PROTOTYPES: tuple[str, ...] = (
    "lol that was hilarious",
    "what game is this",
    "I think he's wrong about that",
    "I agree with you",
    "did you see that",
    "I can't believe he said that",
    "this stream is great",
    "good morning everyone",
    "I hope they win tonight",
    "I don't trust the government",
    "the president is lying again",
    "I have no idea what's going on",
    "what did he just say",
    "my internet is lagging",
    "I'm so bored right now",
    "can you play some music",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class MeaningVerdict:
    """The kind of disclosure a line is by meaning. It carries no topic: a nearest prototype is a
    guess, and a guess must not mark what the viewer said plainly as changed."""

    kind: str
    similarity: float


def prototype_texts() -> list[str]:
    """Every prototype, disclosures first (in :data:`DISCLOSURE_PROTOTYPES` order), then chat."""
    return [text for examples in DISCLOSURE_PROTOTYPES.values() for text in examples] + list(CHAT_PROTOTYPES)


class DisclosurePrototypes:
    """The prototypes' vectors (rows of :func:`prototype_texts`, embedded once) and the verdict for a batch."""

    def __init__(self, vectors: Vectors) -> None:
        self._kinds = [kind for kind, texts in DISCLOSURE_PROTOTYPES.items() for _ in texts]
        self._disclosures: Vectors = vectors[: len(self._kinds)]
        self._chat: Vectors = vectors[len(self._kinds) :]
        self._toward_disclosures: Vectors = self._disclosures.mean(axis=0) - self._chat.mean(axis=0)

    def toward_self_statements(self, query: Vectors, weight: float) -> Vectors:
        """``query`` moved toward what a viewer says about themselves and away from ordinary chat.

        A question about the asker ("which club do I support?") is answered by a statement of
        theirs, and among a regular's hundreds of lines a reaction or a remark about the stream
        can sit nearer the question than the statement does. Adding ``weight`` times the mean
        disclosure prototype minus the mean chat prototype scores every line by its cosine to
        the question plus ``weight`` times how much it reads like a disclosure: one extra vector,
        not one comparison per line.
        """
        moved: Vectors = (query + weight * self._toward_disclosures).astype(query.dtype)
        return moved

    def verdicts(self, vectors: Vectors) -> list[MeaningVerdict | None]:
        """For each row: the kind of disclosure it is, or None (two small matrix products a batch)."""
        if len(vectors) == 0:
            return []
        disclosure_scores = vectors @ self._disclosures.T
        chat_best = (vectors @ self._chat.T).max(axis=1)
        best = disclosure_scores.argmax(axis=1)
        found: list[MeaningVerdict | None] = []
        for row, index in enumerate(best.tolist()):
            score = float(disclosure_scores[row, index])
            is_note = score >= NOTE_AT_LEAST and score - float(chat_best[row]) >= NOTE_MARGIN
            found.append(MeaningVerdict(self._kinds[index], score) if is_note else None)
        return found
