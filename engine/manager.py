"""ConversationManager: from a stored chat line to a stored, post-processed in-character reply.

(Interface committed first so adapters can be written against it; the implementation follows.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from engine.events import ChatEvent, Reply
from memory import ForgetResult, UserRecord
from personas.card import PersonaCard

__all__ = ["ConversationManager"]


class ConversationManager:
    async def ingest(self, event: ChatEvent) -> UserRecord:
        """Commit the line to memory (always, answered or not) and return its author's record."""
        raise NotImplementedError

    async def reply(self, event: ChatEvent) -> Reply | None:
        """Generate, post-process and store the reply to an ingested event; None if nothing to say."""
        raise NotImplementedError

    def reply_stream(self, event: ChatEvent) -> AsyncIterator[str]:
        """Yield the post-processed reply so far (cumulative text); stores the final reply."""
        raise NotImplementedError

    async def handle(self, event: ChatEvent) -> Reply | None:
        """ingest + reply when ``event.addresses_bot``."""
        raise NotImplementedError

    async def persona_for(self, platform: str, channel_id: str, server_id: str | None = None) -> PersonaCard:
        raise NotImplementedError

    async def switch_persona(
        self, platform: str, scope_id: str, name: str, *, scope: str = "channel", set_by: str | None = None
    ) -> PersonaCard:
        raise NotImplementedError

    async def forget(self, platform: str, user_id: str) -> ForgetResult:
        raise NotImplementedError
