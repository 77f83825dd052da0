"""Helpers shared by the overlay, voice and OBS tests: a viewer's line, and the reply to it."""

from __future__ import annotations

import itertools

from engine.events import ChatEvent
from engine.manager import ConversationManager

__all__ = ["answer", "viewer_line"]

_numbers = itertools.count(1)


def viewer_line(text: str, *, author: str = "mossy_frog", channel: str = "stream") -> ChatEvent:
    return ChatEvent(
        platform="twitch",
        channel_id=channel,
        author_id=f"id-{author}",
        author_name=author,
        text=text,
        message_id=f"stage-{next(_numbers)}",
        addresses_bot=True,
    )


async def answer(manager: ConversationManager, text: str, **line: str) -> str | None:
    """The way Twitch answers (no snapshots asked for): the overlay still gets them."""
    heard = await manager.hear(viewer_line(text, **line))
    reply = await manager.reply(heard)
    return reply.text if reply else None
