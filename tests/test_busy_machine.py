"""Chat on a streamer's busy PC: few CPU threads by default, and no generating past the cut."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from engine.backends.base import Backend, GenerationRequest, TextStream
from engine.backends.embedded import default_cpu_threads
from engine.backends.factory import make_backend


class _EndlessBackend(Backend):
    """A model that never stops on its own; records how many chunks were taken and the close."""

    name = "endless"

    def __init__(self) -> None:
        self.chunks_taken = 0
        self.closed = False

    def stream(self, request: GenerationRequest) -> TextStream:
        return TextStream().attach(self._chunks())

    async def _chunks(self) -> AsyncIterator[str]:
        try:
            while True:
                self.chunks_taken += 1
                yield "and then a boss appears "
                await asyncio.sleep(0.001)  # a real model takes time per token
        finally:
            self.closed = True


def test_the_default_leaves_half_the_cores_to_obs_and_the_game() -> None:
    assert default_cpu_threads(2) == 1
    assert default_cpu_threads(1) == 1
    assert default_cpu_threads(16) == 8


def test_the_embedded_backend_uses_one_thread_on_a_two_core_machine(make_settings, monkeypatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    backend = make_backend(make_settings(backend={"kind": "embedded"}))
    assert backend.threads == 1  # type: ignore[attr-defined]
    chosen = make_backend(make_settings(backend={"kind": "embedded", "threads": 3}))
    assert chosen.threads == 3  # type: ignore[attr-defined]
    llamacpp = make_backend(make_settings(backend={"kind": "llamacpp"}))
    assert llamacpp.llamacpp.threads == 1  # type: ignore[attr-defined]


async def test_generation_stops_once_the_reply_is_past_its_maximum_length(make_settings, counter) -> None:
    from bot.app import build_manager, close_manager
    from engine.events import ChatEvent

    backend = _EndlessBackend()
    manager = await build_manager(make_settings(backend={"timeout_s": 5.0}), backend=backend, counter=counter)
    try:
        heard = await manager.hear(ChatEvent("console", "local", "you", "you", "tell me a story", addresses_bot=True))
        reply = await manager.reply(heard)
    finally:
        await close_manager(manager)
    assert reply is not None and reply.finish_reason == "length"
    limit = manager.default_persona().style.max_reply_chars
    assert len(reply.text) <= limit
    # 24 characters a chunk: the cut is reached after about limit / 24 chunks, not at the timeout.
    assert backend.chunks_taken <= limit // 24 + 2
    assert backend.closed  # closing the stream is what stops a real model generating
