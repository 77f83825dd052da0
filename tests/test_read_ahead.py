"""Reading ahead: while chat arrives, a local backend is handed the exact start of the next prompt."""

from __future__ import annotations

import asyncio

from bot.app import build_manager, close_manager
from engine.backends.base import GenerationRequest
from engine.backends.read_ahead import ChannelLike
from engine.backends.scripted import ScriptedBackend
from engine.events import ChatEvent
from engine.prompting.tokens import TokenCounter


class ReadsAhead(ScriptedBackend):
    """A scripted backend that keeps prompt state, as llama.cpp does: it records what it is handed."""

    def __init__(self) -> None:
        super().__init__(default="Wild indeed!")
        self.read: list[GenerationRequest] = []

    def reads_ahead(self, conversation: str | None) -> bool:
        return True

    async def read_ahead(self, request: GenerationRequest) -> None:
        self.read.append(request)
        await asyncio.sleep(0.01)  # a slice of prompt evaluation: lines keep arriving meanwhile


def chat_line(number: int, addresses_bot: bool = False, channel: str = "stream") -> ChatEvent:
    return ChatEvent(
        platform="twitch",
        channel_id=channel,
        author_id=f"u{number % 5}",
        author_name=f"viewer{number % 5}",
        text=f"line {number}: that boss fight was close",
        message_id=f"{channel}-m{number}",
        addresses_bot=addresses_bot,
    )


async def settle(backend: ReadsAhead) -> None:
    """Until the read-ahead task has handed over everything heard so far."""
    for _ in range(200):
        await asyncio.sleep(0.02)
        seen = len(backend.read)
        await asyncio.sleep(0.05)
        if len(backend.read) == seen:
            return


async def test_what_is_read_ahead_is_exactly_how_the_next_prompt_starts(make_settings, counter: TokenCounter) -> None:
    backend = ReadsAhead()
    manager = await build_manager(make_settings(backend={"kind": "scripted"}), backend=backend, counter=counter)
    try:
        for number in range(12):
            await manager.handle(chat_line(number, addresses_bot=number in (2, 11)))
            if number == 9:
                await settle(backend)
    finally:
        await close_manager(manager)

    first_reply, second_reply = backend.requests
    last_read = backend.read[-1]
    assert second_reply.messages[: len(last_read.messages)] == last_read.messages
    assert last_read.messages[-1].content.endswith("line 10: that boss fight was close")  # up to the newest line
    assert len(last_read.messages) > len(first_reply.messages)
    assert (last_read.conversation, last_read.adapter_path) == (second_reply.conversation, second_reply.adapter_path)


async def test_before_any_reply_a_channel_is_read_from_the_start_its_first_prompt_will_have(
    make_settings, counter: TokenCounter
) -> None:
    backend = ReadsAhead()
    manager = await build_manager(make_settings(backend={"kind": "scripted"}), backend=backend, counter=counter)
    try:
        for number in range(5):
            await manager.hear(chat_line(number))
        await settle(backend)
        await manager.handle(chat_line(5, addresses_bot=True))
    finally:
        await close_manager(manager)
    (first_reply,) = backend.requests
    assert first_reply.messages[: len(backend.read[-1].messages)] == backend.read[-1].messages
    assert backend.read[-1].messages[-1].content.endswith("line 4: that boss fight was close")


async def test_a_flood_is_read_in_a_few_passes_and_its_overflowing_window_trimmed_before_the_reply(
    make_settings, counter: TokenCounter
) -> None:
    backend = ReadsAhead()
    settings = make_settings(backend={"kind": "scripted", "context_tokens": 1024})
    manager = await build_manager(settings, backend=backend, counter=counter)
    try:
        await manager.handle(chat_line(0, addresses_bot=True))
        for number in range(1, 201):  # far more than a 1024-token window holds
            await manager.hear(chat_line(number))
        await settle(backend)
        await manager.handle(chat_line(201, addresses_bot=True))
    finally:
        await close_manager(manager)
    # Without coalescing every line is a pass of its own (200); how many lines one pass takes depends on how
    # fast lines are stored (70 and 111 passes were seen in full runs of the suite on this machine).
    assert 1 <= len(backend.read) < 190
    last_read, reply = backend.read[-1], backend.requests[-1]
    assert "line 200:" in last_read.messages[-1].content
    assert "Earlier in this chat" in last_read.messages[0].content  # trimmed and summarised while reading
    assert reply.messages[: len(last_read.messages)] == last_read.messages


async def test_a_backend_with_a_prefix_cache_of_its_own_costs_no_prompt_builds(
    make_settings, counter: TokenCounter
) -> None:
    backend = ScriptedBackend(default="Wild indeed!")
    manager = await build_manager(make_settings(backend={"kind": "scripted"}), backend=backend, counter=counter)
    built = 0
    original = manager.prompts.read_ahead_request

    async def counting(event: ChannelLike) -> GenerationRequest | None:
        nonlocal built
        built += 1
        return await original(event)

    manager.read_ahead.prefix_for = counting
    try:
        await manager.handle(chat_line(0, addresses_bot=True))
        for number in range(1, 30):
            await manager.hear(chat_line(number))
        await asyncio.sleep(0.2)
    finally:
        await close_manager(manager)
    assert built == 0
