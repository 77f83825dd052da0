"""Reading a channel's chat into the model while nobody waits for a reply.

A local backend that keeps a channel's prompt state (llama.cpp) can evaluate each line as it is
heard, so the reply to the next line addressed to the character evaluates little more than that
line. The manager tells :class:`ReadAhead` of every line it hears; one background task builds the
channel's prompt prefix (the system text and history the next reply will start with) and hands it
to the backend. Lines heard while it works are coalesced: each pass reads a channel up to its
newest line, so a flood costs one prompt build per pass, not one per line. Only channels the
backend asks for (``Backend.reads_ahead``) are queued, so servers never pay for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from engine.backends.base import Backend, GenerationRequest
from engine.events import ChatEvent

__all__ = ["ReadAhead"]

log = logging.getLogger(__name__)


class ReadAhead:
    def __init__(
        self, backend: Backend, prefix_for: Callable[[ChatEvent], Awaitable[GenerationRequest | None]]
    ) -> None:
        self.backend = backend
        self.prefix_for = prefix_for  # None: nothing to read now (a reply is being written)
        self._newest: dict[str, ChatEvent] = {}  # channel -> its newest line not read yet
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def heard(self, event: ChatEvent) -> None:
        """Cheap: a dictionary entry, at most one per channel the backend reads ahead for."""
        if not self.backend.reads_ahead(event.channel_key):
            return
        self._newest.pop(event.channel_key, None)
        self._newest[event.channel_key] = event
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="costar-read-ahead")

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._newest:
                channel = next(iter(self._newest))
                await self._read(self._newest.pop(channel))

    async def _read(self, event: ChatEvent) -> None:
        try:
            request = await self.prefix_for(event)
            if request is not None:
                await self.backend.read_ahead(request)
        except Exception as exc:  # best effort: the reply reads the same lines itself if this fails
            log.debug("Reading ahead in %s failed: %s", event.channel_key, exc)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
