"""What the character remembers for one reply, and the notes a chat line leaves behind.

:class:`Recaller` is the engine's single caller of memory's recall and note verbs: the manager
asks it for a note when a line is heard and for the remembered block when a prompt is built.
Memory's errors pass through; the manager translates them at the engine's boundary.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from engine.events import ChatEvent
from engine.recall.block import remembered_block
from engine.recall.disclosures import Disclosure, find_disclosures
from engine.recall.ranking import OTHERS_WEIGHT, Ranking, by_shared_words, superseded_notes
from engine.recall.terms import about_the_speaker, query_terms
from engine.settings import MemorySettings
from memory import MemoryStore, RecalledLine, StoredMessage, line_place
from personas.card import PersonaCard

__all__ = ["Recaller", "ShownFilter"]

# Whether a stored or recalled line may be shown to the model (content rules); the manager's.
ShownFilter = Callable[[StoredMessage | RecalledLine, PersonaCard], bool]


class Recaller:
    def __init__(self, memory: MemoryStore, settings: MemorySettings, count_tokens: Callable[[str], int]) -> None:
        self.memory = memory
        self.settings = settings
        self.count_tokens = count_tokens
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
        lines = [line for line in lines if line.text != quoted and shown(line, persona)]
        ranking = Ranking(about_speaker=about_speaker)
        ranking.add(by_shared_words(notes, terms))
        ranking.add([line for line in lines if line.own])
        ranking.add([line for line in lines if not line.own], weight=OTHERS_WEIGHT)
        ranking.include(notes)
        return remembered_block(
            persona.display_name,
            event.author_name,
            ranking.ranked(superseded_notes(notes)),
            now=datetime.now(UTC),
            count_tokens=self.count_tokens,
            budget_tokens=budget,
        )
