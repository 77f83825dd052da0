"""Channels generate concurrently up to COSTAR_BACKEND_MAX_CONCURRENCY; one channel stays in order.

No clocks here: a gate backend holds every generation until the expected number is in flight at
once, so a manager that serialised channels would never open the gate (bounded wait -> failure).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.app import build_manager, close_manager
from engine.backends.base import Backend, GenerationRequest, TextStream
from engine.errors import BackendUnavailable
from engine.events import ChatEvent
from engine.manager import ConversationManager
from engine.prompting.tokens import TokenCounter

GATE_TIMEOUT_S = 10.0


class GateBackend(Backend):
    """Answers only once ``opens_at`` generations are in flight together; records the peak."""

    name = "gate"

    def __init__(self, opens_at: int) -> None:
        self.opens_at = opens_at
        self.in_flight = 0
        self.peak = 0
        self.requests: list[GenerationRequest] = []
        self._gate = asyncio.Event()

    def stream(self, request: GenerationRequest) -> TextStream:
        self.requests.append(request)
        result = TextStream()
        return result.attach(self._chunks(result))

    async def _chunks(self, result: TextStream) -> AsyncIterator[str]:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        if self.in_flight >= self.opens_at:
            self._gate.set()
        try:
            await asyncio.wait_for(self._gate.wait(), GATE_TIMEOUT_S)
            yield "Hello, chat!"
            result.finish_reason = "stop"
        finally:
            self.in_flight -= 1


def chat_line(channel: str, text: str = "hey pip, how are you?") -> ChatEvent:
    return ChatEvent(
        platform="twitch",
        channel_id=channel,
        author_id=f"u-{channel}",
        author_name="viewer",
        text=text,
        addresses_bot=True,
    )


async def manager_with(make_settings, backend: Backend, counter: TokenCounter, limit: int) -> ConversationManager:
    settings = make_settings(backend={"kind": "scripted", "max_concurrency": limit})
    return await build_manager(settings, backend=backend, counter=counter)


async def test_different_channels_generate_at_the_same_time(make_settings, counter: TokenCounter) -> None:
    backend = GateBackend(opens_at=3)
    manager = await manager_with(make_settings, backend, counter, limit=3)
    try:
        replies = await asyncio.gather(*(manager.handle(chat_line(f"chan{i}")) for i in range(3)))
    finally:
        await close_manager(manager)
    assert [reply.text for reply in replies if reply] == ["Hello, chat!"] * 3
    assert backend.peak == 3


async def test_concurrency_limit_caps_generations_in_flight(make_settings, counter: TokenCounter) -> None:
    backend = GateBackend(opens_at=2)
    manager = await manager_with(make_settings, backend, counter, limit=2)
    try:
        await asyncio.gather(*(manager.handle(chat_line(f"chan{i}")) for i in range(5)))
    finally:
        await close_manager(manager)
    assert backend.peak == 2
    assert len(backend.requests) == 5


async def test_one_channel_generates_one_reply_at_a_time(make_settings, counter: TokenCounter) -> None:
    backend = GateBackend(opens_at=1)
    manager = await manager_with(make_settings, backend, counter, limit=4)
    try:
        await asyncio.gather(*(manager.handle(chat_line("same", f"line {i}")) for i in range(3)))
    finally:
        await close_manager(manager)
    assert backend.peak == 1
    # Each later prompt already holds the earlier turns: history stays append-only.
    assert [len(r.messages) for r in backend.requests] == sorted(len(r.messages) for r in backend.requests)


async def test_manager_metrics_count_replies_errors_and_drops(make_settings, counter: TokenCounter) -> None:
    from engine.backends.scripted import ScriptedBackend

    backend = ScriptedBackend(
        ["Ahoy!", BackendUnavailable("server down"), "", ""]
    )  # empty twice: the manager retries once
    manager = await manager_with(make_settings, backend, counter, limit=2)
    try:
        await manager.handle(chat_line("a"))
        with pytest.raises(BackendUnavailable):
            await manager.handle(chat_line("a", "again?"))
        await manager.handle(chat_line("a", "and again?"))
    finally:
        await close_manager(manager)
    sample = manager.metrics.registry.get_sample_value
    assert sample("costar_replies_total", {"platform": "twitch", "persona": "pip"}) == 1
    assert sample("costar_reply_latency_seconds_count", {"platform": "twitch"}) == 1
    assert sample("costar_time_to_first_chunk_seconds_count", {"platform": "twitch"}) == 1
    assert sample("costar_backend_errors_total", {"kind": "BackendUnavailable"}) == 1
    assert sample("costar_dropped_messages_total", {"reason": "backend_error"}) == 1
    assert sample("costar_dropped_messages_total", {"reason": "empty_reply"}) == 1
    assert sample("costar_queue_depth") == 0
    assert sample("costar_generations_in_flight") == 0
