"""The embedded backend: real SmolLM2 tokens streamed from a worker thread."""

from __future__ import annotations

import asyncio
import threading

import pytest

from engine.backends.base import ChatMessage, GenerationRequest

pytestmark = pytest.mark.model


def _request(max_tokens: int = 24) -> GenerationRequest:
    return GenerationRequest(
        messages=(
            ChatMessage("system", "You are Pip, a cheerful co-host."),
            ChatMessage("user", "ann: hi Pip, how are you?"),
        ),
        max_tokens=max_tokens,
        temperature=0.0,
    )


async def test_streams_several_chunks_and_reports_usage(embedded_backend) -> None:
    stream = embedded_backend.stream(_request())
    chunks = [chunk async for chunk in stream]
    assert len(chunks) > 1 and "".join(chunks).strip()
    assert stream.usage is not None and stream.usage.prompt_tokens > 10 and 0 < stream.usage.completion_tokens <= 24


async def test_generation_does_not_block_the_event_loop(embedded_backend) -> None:
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    beat = asyncio.create_task(heartbeat())
    await embedded_backend.complete(_request(max_tokens=32))
    beat.cancel()
    assert ticks > 5
    assert threading.current_thread() is threading.main_thread()


async def test_a_stream_abandoned_early_frees_the_model_for_the_next_request(embedded_backend) -> None:
    stream = embedded_backend.stream(_request(max_tokens=200))
    async for _chunk in stream:
        break
    await stream.aclose()
    again = await asyncio.wait_for(embedded_backend.complete(_request(max_tokens=8)), timeout=60)
    assert again.strip()


async def test_greedy_decoding_is_reproducible(embedded_backend) -> None:
    first = await embedded_backend.complete(_request())
    second = await embedded_backend.complete(_request())
    assert first == second
