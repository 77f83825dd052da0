"""A record of the two calls every caller makes into the manager (``hear`` and ``link_sent``), and of
the one chat session (``bot.session.ChatSession``) every platform adapter hands its lines to and
answers them through."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from bot.session import ChatSession, TakenLine
from engine.events import ChatEvent, Reply
from engine.flow.ratelimit import SendReservation
from engine.heard import HeardLine
from engine.manager import ConversationManager


@dataclass
class OneWayIn:
    heard: list[str] = field(default_factory=list)  # message ids, in the order they came in
    linked: list[str] = field(default_factory=list)  # platform message ids of sent replies
    taken: list[tuple[str, str]] = field(default_factory=list)  # (session's platform, message id) of chat lines
    answered: list[str] = field(default_factory=list)  # message ids the session wrote a reply to


def record_one_way_in(monkeypatch: pytest.MonkeyPatch) -> OneWayIn:
    """Spy on ConversationManager.hear and .link_sent (they still do their work)."""
    calls = OneWayIn()
    hear, link_sent = ConversationManager.hear, ConversationManager.link_sent

    async def recording_hear(self: ConversationManager, event: ChatEvent) -> HeardLine:
        calls.heard.append(event.message_id)
        return await hear(self, event)

    async def recording_link_sent(self: ConversationManager, reply: Reply, platform_message_id: str) -> None:
        calls.linked.append(platform_message_id)
        await link_sent(self, reply, platform_message_id)

    monkeypatch.setattr(ConversationManager, "hear", recording_hear)
    monkeypatch.setattr(ConversationManager, "link_sent", recording_link_sent)
    _record_session(monkeypatch, calls)
    return calls


def _record_session(monkeypatch: pytest.MonkeyPatch, calls: OneWayIn) -> None:
    """Spy on ChatSession.take_line and its one reply path (they still do their work)."""
    take_line, write = ChatSession.take_line, ChatSession._write

    async def recording_take_line(self: ChatSession, event: ChatEvent) -> TakenLine:
        calls.taken.append((self.platform, event.message_id))
        return await take_line(self, event)

    async def recording_write(
        self: ChatSession, heard: HeardLine, reservation: SendReservation | None
    ) -> tuple[Reply | None, str | None]:
        calls.answered.append(heard.event.message_id)
        return await write(self, heard, reservation)

    monkeypatch.setattr(ChatSession, "take_line", recording_take_line)
    monkeypatch.setattr(ChatSession, "_write", recording_write)
