"""Prompts stay append-only between trims, so a serving engine's prefix cache keeps hitting."""

from __future__ import annotations

import itertools

from bot.app import build_manager, close_manager
from engine.backends.base import ChatMessage, GenerationRequest
from engine.backends.scripted import ScriptedBackend
from engine.events import ChatEvent
from engine.prompting.tokens import TokenCounter


def chat_line(number: int, addresses_bot: bool) -> ChatEvent:
    return ChatEvent(
        platform="twitch",
        channel_id="stream",
        author_id=f"u{number % 7}",
        author_name=f"viewer{number % 7}",
        text=f"line {number}: that play was wild, what do you think happens next?",
        message_id=f"m{number}",
        addresses_bot=addresses_bot,
    )


def window_start(request: GenerationRequest) -> tuple[ChatMessage, ChatMessage]:
    """The system message and the first viewer line: both stay put until the next trim."""
    return request.messages[0], next(message for message in request.messages if message.role == "user")


async def test_prompt_after_a_trim_keeps_the_trimmed_window(make_settings, counter: TokenCounter) -> None:
    backend = ScriptedBackend(default="Wild indeed!")
    settings = make_settings(backend={"kind": "scripted", "context_tokens": 1024})
    manager = await build_manager(settings, backend=backend, counter=counter)
    try:
        for number in range(120):
            await manager.handle(chat_line(number, addresses_bot=number % 4 == 3))
    finally:
        await close_manager(manager)

    pairs = list(itertools.pairwise(backend.requests))
    # A trim moves the window's first viewer line (the summary of what was trimmed may read the same
    # as before: it counts viewers, never names them).
    unchanged_system = [(old, new) for old, new in pairs if window_start(old) == window_start(new)]
    trims = len(pairs) - len(unchanged_system)
    assert trims >= 3, "the replay should cross several trims"
    for old, new in unchanged_system:
        # Everything before the previous turn's context block and new line is reused as is.
        history = old.messages[: -2 if old.messages[-2].role == "system" else -1]
        assert new.messages[: len(history)] == history
