"""What the stream director hands an adapter to say: a stored :class:`~engine.events.Reply` with
why it is said.

An adapter implements one :data:`Speaker` (send it, return the platform's message id); anything
else that shows the character's lines (an overlay, a voice) can take the same utterances.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from engine.events import Reply

__all__ = ["ChatOutlets", "Speaker", "Utterance"]


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


class ChatOutlets:
    """Each running adapter's :data:`Speaker`, by platform: how a line no chat message asked for
    (hearing's spoken answer, COSTAR_HEARING_REPLY_IN_CHAT) reaches chat through that platform's
    own send path and limits (Twitch's send budget, Discord's message length)."""

    def __init__(self) -> None:
        self._speakers: dict[str, Speaker] = {}

    def open(self, platform: str, speak: Speaker) -> None:
        self._speakers[platform] = speak

    def has(self, platform: str) -> bool:
        return platform in self._speakers

    async def post(self, platform: str, utterance: Utterance) -> str | None:
        """The platform's message id, or None when nothing went out (no room, or no such adapter)."""
        speak = self._speakers.get(platform)
        return await speak(utterance) if speak is not None else None
