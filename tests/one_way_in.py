"""A record of the two calls every caller makes into the manager: ``hear`` and ``link_sent``."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from engine.events import ChatEvent, Reply
from engine.heard import HeardLine
from engine.manager import ConversationManager


@dataclass
class OneWayIn:
    heard: list[str] = field(default_factory=list)  # message ids, in the order they came in
    linked: list[str] = field(default_factory=list)  # platform message ids of sent replies


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
    return calls
