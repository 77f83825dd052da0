"""What every converter shares: the card it renders system turns from, and turn helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from finetune.data import Conversation, Message
from personas.card import PersonaCard

__all__ = ["ConvertContext", "Converter", "merge_turns"]


def _default_render(card: PersonaCard) -> str:
    from finetune.persona import system_prompt

    return system_prompt(card)


@dataclass(frozen=True)
class ConvertContext:
    """The persona the data is converted for.

    ``card`` is the base card: converters that carry their own persona (persona-chat facts, HPD
    attributes) copy it with those fields replaced. ``character`` names the speaker that becomes
    the assistant where the source has several (HPD, chat logs).
    """

    card: PersonaCard
    character: str | None = None
    render: Callable[[PersonaCard], str] = field(default=_default_render)

    @property
    def persona_id(self) -> str:
        return self.card.persona_id

    def conversation(self, card: PersonaCard, turns: list[Message], source: str, **extra: Any) -> Conversation | None:
        """Build a conversation, or None when the character never speaks in it."""
        dialogue = merge_turns(turns)
        if not any(turn.role == "assistant" for turn in dialogue):
            return None
        messages = [Message(role="system", content=self.render(card)), *dialogue]
        return Conversation(messages=messages, persona=self.persona_id, source=source, **extra)


class Converter(Protocol):
    def __call__(self, rows: Iterable[dict[str, Any]], context: ConvertContext) -> Iterator[Conversation]: ...


def merge_turns(turns: list[Message]) -> list[Message]:
    """Join consecutive turns of the same role: chat templates expect user/assistant to alternate."""
    merged: list[Message] = []
    for turn in turns:
        text = turn.content.strip()
        if not text:
            continue
        if merged and merged[-1].role == turn.role:
            merged[-1] = Message(role=turn.role, content=f"{merged[-1].content}\n{text}")
        else:
            merged.append(Message(role=turn.role, content=text))
    # A conversation that ends on the user's line teaches nothing after the last reply.
    while merged and merged[-1].role == "user":
        merged.pop()
    return merged
