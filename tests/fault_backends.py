"""Backends that fail the way real model servers do, behind the Backend contract.

``FaultyBackend(["down", "ok", "cut", ...])`` plays one fault per request (then ``ok`` forever):

    ok         streams ``reply`` in a few chunks
    down       connection refused before any text
    http500    the server answered 500
    slow       the first chunk never comes in time (sleeps ``slow_s``)
    stall      some text, then silence (sleeps ``slow_s``)
    cut        some text, then the connection drops
    malformed  some text, then a chunk that is not text (a decoder gave up on the SSE data)
    too_long   the server refused the prompt as too long (not the server's fault)

``calls`` records how many requests actually reached the backend.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable

from engine.backends.base import Backend, GenerationRequest, TextStream
from engine.errors import BackendError, BackendUnavailable, ContextTooLong

__all__ = ["FaultyBackend"]


class FaultyBackend(Backend):
    name = "faulty"

    def __init__(self, faults: Iterable[str] = (), *, reply: str = "All good here, chat!", slow_s: float = 5.0) -> None:
        self.faults: deque[str] = deque(faults)
        self.reply = reply
        self.slow_s = slow_s
        self.calls = 0
        self.played: list[str] = []

    def stream(self, request: GenerationRequest) -> TextStream:
        self.calls += 1
        fault = self.faults.popleft() if self.faults else "ok"
        self.played.append(fault)
        result = TextStream()
        return result.attach(self._chunks(fault, result))

    async def _chunks(self, fault: str, result: TextStream) -> AsyncIterator[str]:
        await asyncio.sleep(0)
        if fault == "down":
            raise ConnectionRefusedError(111, "Connection refused")
        if fault == "http500":
            raise BackendUnavailable("model server answered HTTP 500")
        if fault == "too_long":
            raise ContextTooLong("prompt is longer than the model's context")
        if fault == "slow":
            await asyncio.sleep(self.slow_s)
        half = len(self.reply) // 2
        yield self.reply[:half]
        if fault == "stall":
            await asyncio.sleep(self.slow_s)
        if fault == "cut":
            raise ConnectionResetError(104, "Connection reset by peer")
        if fault == "malformed":
            yield b'data: {"choices": [{"delta": {"content": "oops'  # type: ignore[misc]
        if fault not in ("ok", "slow", "stall", "cut", "malformed"):
            raise BackendError(f"unknown fault {fault!r} in the test script")
        yield self.reply[half:]
        result.finish_reason = "stop"
