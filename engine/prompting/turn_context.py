"""What the character should know for this one turn, and what it keeps from trimmed history.

Turn context (fired lore, who the speaker is, the card's post-history instructions) sits just
before the new line, never in the cached prefix: it changes every turn.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from engine.events import ChatEvent
from engine.prompting.lines import speaker_label
from memory.records import StoredMessage, UserRecord
from personas.card import PersonaCard
from personas.lorebook import active_entries
from personas.render import substitute_macros

__all__ = ["build_turn_context", "summarise_dropped"]


def _speaker_memory(event: ChatEvent, user: UserRecord | None) -> str:
    name = speaker_label(event.author_name)  # viewer-chosen text going into a system message
    # The one definition of a first-time chatter (hear() copies it into event.is_first_message).
    if user is None or user.is_new:
        about = f"{name} is chatting here for the first time: welcome them."
    else:
        since = user.first_seen.strftime("%Y-%m-%d")
        about = f"{name} is a regular: {user.message_count} messages since {since}."
    # Notes about the speaker are viewer text: they ride in the viewer's own message
    # (engine.recall.block), never in this system message.
    return about


def build_turn_context(
    persona: PersonaCard,
    event: ChatEvent,
    user: UserRecord | None,
    history: Sequence[StoredMessage],
    count_tokens: Callable[[str], int],
) -> list[str]:
    """Context parts, most important first (the prompt builder drops from the end when short)."""
    parts = [_speaker_memory(event, user)]
    if persona.post_history_instructions:
        parts.append(
            substitute_macros(persona.post_history_instructions, persona.display_name, speaker_label(event.author_name))
        )
    recent = [line.text for line in history] + [event.text]
    for entry in active_entries(persona.lorebook, recent, count_tokens):
        parts.append(
            "Lore: " + substitute_macros(entry.content, persona.display_name, speaker_label(event.author_name))
        )
    return parts


def summarise_dropped(dropped: Sequence[StoredMessage], persona: PersonaCard, previous: str | None) -> str:
    """A cheap extractive summary: no model call, so trimming never costs a generation."""
    viewers = Counter(speaker_label(line.author_name) for line in dropped if not line.is_character)
    regulars = ", ".join(name for name, _ in viewers.most_common(6))
    said = [line.text[:100] for line in dropped if line.is_character][-2:]
    parts = [f"Earlier in this chat ({len(dropped)} older lines): {regulars or 'quiet'} were talking."]
    if said:
        parts.append(f"{persona.display_name} had said: " + " / ".join(f'"{text}"' for text in said))
    summary = " ".join(parts)
    if previous:
        # Keep only the latest earlier summary's first sentence so memory does not grow unbounded.
        summary = previous.split(". ")[0].rstrip(".") + ". " + summary
    return summary[:800]
