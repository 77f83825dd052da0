"""What the stream director hands an adapter to say: a stored :class:`~engine.events.Reply` with
why it is said.

An adapter implements one :data:`Speaker` (send it, return the platform's message id); anything
else that shows the character's lines (an overlay, a voice) can take the same utterances.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from engine.events import Reply

__all__ = ["Speaker", "Utterance"]


@dataclass(frozen=True, slots=True)
class Utterance:
    """``kind`` is the event kind ("raid", "follow", ...) or "command", "timer", "proactive",
    "redemption_answer". ``urgent`` lines go before ordinary replies within the send budget;
    ``reply_to`` is the platform message id to thread under (a command), None for the rest."""

    reply: Reply
    kind: str
    urgent: bool
    reply_to: str | None = None

    @property
    def channel_id(self) -> str:
        return self.reply.event.channel_id

    @property
    def text(self) -> str:
        return self.reply.text


# Sends an utterance; the platform's message id, or None when nothing went out.
Speaker = Callable[[Utterance], Awaitable[str | None]]
