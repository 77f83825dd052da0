"""A backend that replies from a script: for tests, benchmarks and replaying transcripts.

``ScriptedBackend(["hi", "bye"])`` answers "hi" then "bye"; ``enqueue`` adds more; with the
queue empty it falls back to ``default`` (or echoes the last user line when ``echo=True``).
Every request is recorded in ``requests`` so tests can assert on the prompt that was sent.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable

from engine.backends.base import Backend, GenerationRequest, TextStream
from engine.errors import BackendError
from engine.events import Usage

__all__ = ["ScriptedBackend"]

ScriptItem = str | BaseException | Callable[[GenerationRequest], str]


class ScriptedBackend(Backend):
    name = "scripted"

    def __init__(
        self,
        script: Iterable[ScriptItem] = (),
        *,
        default: str | None = "...",
        echo: bool = False,
        chunk_chars: int = 8,
        delay_s: float = 0.0,
        chunk_delay_s: float = 0.0,
    ) -> None:
        self.script: deque[ScriptItem] = deque(script)
        self.default = default
        self.echo = echo
        self.chunk_chars = chunk_chars
        self.delay_s = delay_s
        self.chunk_delay_s = chunk_delay_s  # between chunks: a reply that streams at a model's pace
        self.requests: list[GenerationRequest] = []

    def enqueue(self, items: Iterable[ScriptItem]) -> None:
        self.script.extend(items)

    def _next_text(self, request: GenerationRequest) -> str:
        if self.script:
            item = self.script.popleft()
        elif self.echo:
            item = request.messages[-1].content
        elif self.default is not None:
            item = self.default
        else:
            raise BackendError("scripted backend ran out of replies")
        if isinstance(item, BaseException):
            raise item
        return item(request) if callable(item) else item

    def stream(self, request: GenerationRequest) -> TextStream:
        self.requests.append(request)
        result = TextStream()
        return result.attach(self._chunks(request, result))

    async def _chunks(self, request: GenerationRequest, result: TextStream) -> AsyncIterator[str]:
        text = self._next_text(request)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        for start in range(0, len(text), self.chunk_chars):
            yield text[start : start + self.chunk_chars]
            await asyncio.sleep(self.chunk_delay_s)
        prompt_chars = sum(len(m.content) for m in request.messages)
        result.usage = Usage(prompt_tokens=prompt_chars // 4, completion_tokens=len(text) // 4)
        result.finish_reason = "stop"
