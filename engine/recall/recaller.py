"""What the character remembers for one reply, and the notes a chat line leaves behind.

:class:`Recaller` is the engine's single caller of memory's recall and note verbs: the manager
asks it for a note when a line is heard and for the remembered block when a prompt is built.
Memory's errors pass through; the manager translates them at the engine's boundary.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from engine.events import ChatEvent
from engine.recall.block import remembered_block
from engine.recall.disclosures import Disclosure, find_disclosures, note_words
from engine.recall.embed_worker import EmbedWorker
from engine.recall.embedding import Vectors
from engine.recall.meaning import DisclosurePrototypes, prototype_texts
from engine.recall.ranking import OTHERS_WEIGHT, Ranking, by_shared_words, superseded_notes
from engine.recall.terms import about_the_speaker, query_terms, without_names
from engine.settings import MemorySettings
from memory import MemoryStore, RecalledLine, StoredMessage, line_place
from personas.card import PersonaCard

__all__ = ["NEAREST_AT_LEAST", "Recaller", "ShownFilter"]

# Cosine (all-MiniLM-L6-v2) below which a line is not taken as a memory of the question.
# Tuned on tests/data/recall_meaning_dev.jsonl only (docs/memory.md).
NEAREST_AT_LEAST = 0.1

# Cosine between two of a viewer's lines above which the newer one may update the older (a later
# plan, a correction), when it also reads as a change (_A_CHANGE); set on the dev split (docs/memory.md).
SAME_MATTER_AT_LEAST = 0.3
# How a viewer says that something changed. Closeness in meaning alone does not tell an update
# from chat: among a regular's few hundred lines every line has a few others above 0.3 ("omg my
# wife!!!", then "I got some real cheap eggs today!": 0.32), and at gap 2,000 those "updates"
# pushed the answer out of the block.
_A_CHANGE = re.compile(
    r"\b(?:actually|instead|anymore|any more|no longer|change of plans?|changed|fell through|cancell?ed|"
    r"called off|switched|swapped|moved|not .{1,30} but)\b|\bnow\W*$",
    re.IGNORECASE,
)
NEWER_LOOKED_FOR = 3  # of the asker's lines found by meaning, the first few are checked for newer word
# How far a question about the asker is moved toward self-statements before their own lines are
# searched (DisclosurePrototypes.toward_self_statements); set on the dev split only, at gap 2,000.
SELF_STATEMENT_WEIGHT = 0.6

# Whether a stored or recalled line may be shown to the model (content rules); the manager's.
ShownFilter = Callable[[StoredMessage | RecalledLine, PersonaCard], bool]


class Recaller:
    def __init__(
        self,
        memory: MemoryStore,
        settings: MemorySettings,
        count_tokens: Callable[[str], int],
        *,
        embeddings: EmbedWorker | None = None,
    ) -> None:
        self.memory = memory
        self.settings = settings
        self.count_tokens = count_tokens
        self.embeddings = embeddings  # recall by meaning too, when there is an embedder
        self._prototypes: DisclosurePrototypes | None = None  # embedded on the first batch
        self.languages = tuple(code.strip() for code in settings.note_languages.split(",") if code.strip())

    def disclosures_in(self, event: ChatEvent) -> list[Disclosure]:
        """What the viewer just said about themselves: usually nothing, found with one regex search.

        Synchronous, so the per-line path awaits nothing unless there is a note to write.
        """
        if not self.settings.notes_from_disclosures or event.text.startswith("!"):
            return []
        return find_disclosures(event.text, self.languages)

    async def note_disclosures(self, event: ChatEvent, disclosures: list[Disclosure], *, harmful: bool) -> int:
        """Notes from :meth:`disclosures_in`; how many were new.

        A ``harmful`` line (one that breaks a content rule) leaves no note: notes reach the prompt,
        and such lines never do.
        """
        if not disclosures or harmful:
            return 0
        source = await self.memory.message_id_for(event.platform, event.message_id)
        added = 0
        for disclosure in disclosures:
            added += await self.memory.add_note(
                event.platform,
                event.author_id,
                disclosure.text,
                kind="disclosure",
                source_message_id=source,
                keep_at_most=self.settings.notes_per_viewer,
                noted_at=event.sent_at,
                place=line_place(event),  # said in a DM, it stays out of every public prompt
                topic=disclosure.topic,
            )
        return added

    async def note_by_meaning(
        self, events: list[ChatEvent], vectors: Vectors, *, harmful: Callable[[ChatEvent], Awaitable[bool]]
    ) -> int:
        """Notes from embedded lines whose meaning is a self-disclosure no pattern caught; how many were new.

        The embedding worker's hook: ``vectors`` are the lines' own, just made. A note keeps the
        viewer's words (the line, cut like a pattern note), its source line and its time.
        """
        if not self.settings.notes_from_disclosures or self.embeddings is None or not events:
            return 0
        prototypes = await self._prototypes_embedded()
        if prototypes is None:
            return 0
        added = 0
        for event, verdict in zip(events, prototypes.verdicts(vectors), strict=True):
            if verdict is None or event.text.startswith("!") or find_disclosures(event.text, self.languages):
                continue  # not one, or the pattern table already noted it
            if await harmful(event):
                continue
            source = await self.memory.message_id_for(event.platform, event.message_id)
            added += await self.memory.add_note(
                event.platform,
                event.author_id,
                note_words(event.text),
                kind="disclosure",
                source_message_id=source,
                keep_at_most=self.settings.notes_per_viewer,
                noted_at=event.sent_at,
                place=line_place(event),  # said in a DM, it stays out of every public prompt
            )
        return added

    async def _prototypes_embedded(self) -> DisclosurePrototypes | None:
        """The prototypes' vectors, embedded once (in the worker's thread); None while the embedder fails."""
        if self._prototypes is None and self.embeddings is not None:
            rows = await self.embeddings.embed_texts(prototype_texts())
            if rows is not None:
                self._prototypes = DisclosurePrototypes(rows)
        return self._prototypes

    async def block_for(
        self,
        event: ChatEvent,
        persona: PersonaCard,
        *,
        before_id: int,
        shown: ShownFilter,
        quoted: str | None = None,
    ) -> str | None:
        """Notes about the speaker and past lines from outside the history window, within budget.

        ``quoted`` is the text of a replied-to line already quoted in the viewer's message.
        """
        budget = self.settings.recall_tokens
        if budget <= 0:
            return None
        terms = query_terms(event.text, ignore=(persona.name, persona.display_name))
        about_speaker = about_the_speaker(event.text)
        place = line_place(event)  # only what may be shown where the viewer talks now
        notes = await self.memory.notes_for(event.platform, event.author_id, persona.persona_id, seen_in=place)
        lines = await self.memory.recall(
            event.platform,
            event.channel_id,
            event.author_id,
            terms,
            before_id=before_id,
            limit=self.settings.recall_lines,
            about_speaker=about_speaker,
            place=place,
        )
        ranking = Ranking(about_speaker=about_speaker)
        near = await self._nearest(event, before_id, persona)
        own_near, others_near = near if near is not None else ([], [])
        # With recall by meaning a note that answers without sharing a word comes in through its
        # line (ranked as that note); without it, every note is listed.
        ranking.add(
            by_shared_words(notes, terms, every_note=near is None), weight=1.0 if about_speaker else OTHERS_WEIGHT
        )
        ranking.add([line for line in lines if line.own])
        ranking.add([line for line in lines if not line.own], weight=OTHERS_WEIGHT)
        by_line = {note.source_message_id: note for note in notes if note.source_message_id is not None}
        ranking.add([by_line.get(line.id, line) for line in own_near])
        ranking.add(others_near, weight=OTHERS_WEIGHT)
        for older, newer in await self._newer_on_the_same_matter(event, own_near[:NEWER_LOOKED_FOR], before_id):
            ranking.add_newer(older, newer)
        ranked = [
            entry
            for entry in ranking.ranked(superseded_notes(notes))
            if not isinstance(entry.item, RecalledLine) or (entry.item.text != quoted and shown(entry.item, persona))
        ]
        return remembered_block(
            persona.display_name,
            event.author_name,
            ranked,
            now=datetime.now(UTC),
            count_tokens=self.count_tokens,
            budget_tokens=budget,
        )

    async def _newer_on_the_same_matter(
        self, event: ChatEvent, found: list[RecalledLine], before_id: int
    ) -> list[tuple[RecalledLine, RecalledLine]]:
        """(older, newer) pairs: a later line of the asker's close in meaning to one found for the question.

        "Rome trip booked!" answers "where am I going on holiday?" better than "change of plans,
        Rome got cancelled, we're doing Vienna instead" does, by meaning; but the two lines are
        close to each other (cosines of 0.37-0.54 seen, where unrelated chat scores 0.1-0.2), and the
        newer one is what the viewer holds now.
        """
        if self.embeddings is None or not found:
            return []
        rows = await self.embeddings.embed_texts([line.text for line in found])
        if rows is None:
            return []
        pairs = []
        for older, row in zip(found, rows, strict=True):
            nearest = await self.memory.nearest_lines(
                event.platform,
                event.channel_id,
                event.author_id,
                row,
                own_only=True,
                before_id=before_id,
                place=line_place(event),
                limit=NEWER_LOOKED_FOR + 1,  # the line itself comes first
            )
            pairs += [
                (older, line)
                for line, similarity in nearest
                if line.id > older.id
                and similarity >= SAME_MATTER_AT_LEAST
                and line.text != older.text
                and _A_CHANGE.search(line.text) is not None
            ]
        return pairs

    async def _nearest(
        self, event: ChatEvent, before_id: int, persona: PersonaCard
    ) -> tuple[list[RecalledLine], list[RecalledLine]] | None:
        """The speaker's own lines and other viewers' nearest in meaning to the new line; None without embeddings.

        The character's name is left out of the question: it says nothing of what is asked, and
        pulls every question toward lines that name the character (on the dev split the right
        line's mean reciprocal rank among the asker's lines rose from 0.72 to 0.76). Lines less
        similar than :data:`NEAREST_AT_LEAST` are not memories of this question, only the least
        far of the viewer's lines.
        """
        if self.embeddings is None or self.settings.recall_lines <= 0:
            return None
        query = await self.embeddings.embed_query(without_names(event.text, (persona.name, persona.display_name)))
        if query is None:  # the embedder failed (logged): full text alone, this time
            return None
        prototypes = await self._prototypes_embedded() if about_the_speaker(event.text) else None
        found = []
        for own_only in (True, False):
            searched = query
            if own_only and prototypes is not None:  # what they said about themselves answers it
                searched = prototypes.toward_self_statements(query, SELF_STATEMENT_WEIGHT)
            nearest = await self.memory.nearest_lines(
                event.platform,
                event.channel_id,
                event.author_id,
                searched,
                own_only=own_only,
                before_id=before_id,
                place=line_place(event),  # a DM's lines stay out of public prompts, as in full-text recall
                # The speaker's own lines by meaning get twice the room: the asker's right line is
                # often second or third among lines of like sense, and the fused ranking and the
                # budget decide what is shown.
                limit=self.settings.recall_lines * (2 if own_only else 1),
            )
            found.append([line for line, similarity in nearest if similarity >= NEAREST_AT_LEAST])
        return found[0], found[1]
