"""Which remembered things come first: one ranking over notes and recalled lines.

Each search (notes by shared words, the speaker's own lines, other viewers' lines; by meaning
too, when there are embeddings) gives its own ranked list, and the lists are merged by
reciprocal rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009): an item scores
``weight / (k + rank)`` in every list that holds it, summed. Ranks, not raw scores, are merged,
so a BM25-like sum and a cosine similarity need no common scale. A note and the line it was made
from are one item (the note's words are shown).

Then four rules: a later line of the asker's close in meaning to one found ("going to Rome in
May", then "change of plans, we're doing Vienna instead") scores just above it; a note
superseded by a newer one on the same topic ("I live in York", then "actually I moved to
Leeds") never comes before the newer one, which takes its place if it ranked higher, and is
marked as changed; when the question is about the asker, every one of the asker's own memories comes before other viewers'
lines; ties go to a note, then to the newer item.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from memory.records import Note, RecalledLine
from memory.spelling import fold_text, holds

__all__ = ["FUSION_K", "OTHERS_WEIGHT", "Ranked", "Ranking", "by_shared_words", "superseded_notes"]

# RRF's constant from the paper: it damps the difference between the first few ranks, so an
# item found by two searches beats one found first by a single search.
FUSION_K = 60
OTHERS_WEIGHT = 0.5  # another viewer's line is worth half the asker's own memory at equal rank

Remembered = Note | RecalledLine


@dataclass(frozen=True, slots=True)
class Ranked:
    """One item of the block, best first: what to show and whether it is out of date."""

    item: Remembered
    superseded: bool = False


@dataclass(slots=True)
class Ranking:
    """Ranked lists from each search, fused into one order by :meth:`ranked`."""

    about_speaker: bool = False
    _items: dict[tuple[str, int], Remembered] = field(default_factory=dict)
    _scores: dict[tuple[str, int], float] = field(default_factory=dict)
    _newer: list[tuple[tuple[str, int], tuple[str, int]]] = field(default_factory=list)  # (older, newer) keys

    def add(self, ranked: Sequence[Remembered], weight: float = 1.0) -> None:
        """One search's results, best first."""
        for rank, item in enumerate(ranked, start=1):
            key = _key(item)
            if isinstance(item, Note) or key not in self._items:  # a note's words beat its line's
                self._items[key] = item
            self._scores[key] = self._scores.get(key, 0.0) + weight / (FUSION_K + rank)

    def add_newer(self, older: RecalledLine, newer: RecalledLine) -> None:
        """``newer``, a later line of the same viewer on the matter of ``older``, goes just before it."""
        key = _key(newer)
        self._items.setdefault(key, newer)
        self._newer.append((_key(older), key))

    def ranked(self, superseded: Mapping[int, int] | None = None) -> list[Ranked]:
        """Best first. ``superseded``: note id → the id of the newer note on its topic.

        A superseded note never comes before the note that replaced it: when the older one ranks
        higher (the question shared its words), the newer one takes its place and the older one
        follows, marked as changed. A correction is never hidden behind what it corrected.
        """
        replaced_by = dict(superseded or {})

        def order(key: tuple[str, int]) -> tuple[bool, float, bool, float]:
            item = self._items[key]
            others = self.about_speaker and isinstance(item, RecalledLine) and not item.own
            # At equal score a note goes first: it is what the viewer said about themselves, distilled.
            line = not isinstance(item, Note)
            return (others, -self._scores.get(key, 0.0), line, -item.created_at.timestamp())

        for older, newer in self._newer:  # a later word on the matter scores just above the line it updates
            self._scores[newer] = max(self._scores.get(newer, 0.0), self._scores.get(older, 0.0) + 1e-9)
        ordered = [self._items[key] for key in sorted(self._items, key=order)]
        for stale_id, current_id in replaced_by.items():
            positions = {id(item): index for index, item in enumerate(ordered)}
            stale = next((item for item in ordered if isinstance(item, Note) and item.id == stale_id), None)
            current = next((item for item in ordered if isinstance(item, Note) and item.id == current_id), None)
            if stale is None or current is None or positions[id(stale)] > positions[id(current)]:
                continue
            ordered.remove(current)  # the correction takes the place the older note earned
            ordered.insert(ordered.index(stale), current)
        return [Ranked(item, isinstance(item, Note) and item.id in replaced_by) for item in ordered]


def _key(item: Remembered) -> tuple[str, int]:
    if isinstance(item, Note):
        return ("line", item.source_message_id) if item.source_message_id is not None else ("note", item.id)
    return ("line", item.id)


def by_shared_words(notes: Sequence[Note], terms: Sequence[str], *, every_note: bool = True) -> list[Note]:
    """Notes holding more of ``terms`` (folded, as memory folds them) first, then the newest.

    With ``every_note`` (no recall by meaning) all of a viewer's notes are listed: they are few
    and each says something about them. Without it, only the notes that share a word with the
    question (all of them when it has no terms: "do you remember me?"): at gap 2,000 a regular's
    notes made from chat ("I'm in Austrian") filled the block ahead of the line that answered,
    while a note that answers by meaning comes in through its line (``Recaller``).
    """
    scored = []
    for note in notes:
        words = set(fold_text(note.text))
        shared = sum(holds(words, term) for term in terms)
        if shared or every_note or not terms:
            scored.append((shared, note.created_at, note.id, note))
    scored.sort(key=lambda entry: entry[:3], reverse=True)
    return [entry[3] for entry in scored]


def superseded_notes(notes: Sequence[Note]) -> dict[int, int]:
    """Each note that a newer note on the same topic replaced: its id → the newest one's id."""
    newest: dict[str, Note] = {}
    for note in notes:
        if note.topic is None:
            continue
        current = newest.get(note.topic)
        if current is None or (note.created_at, note.id) > (current.created_at, current.id):
            newest[note.topic] = note
    return {
        note.id: newest[note.topic].id for note in notes if note.topic is not None and newest[note.topic].id != note.id
    }
