"""Reading a channel's chat into the model while nobody waits for a reply.

A local backend that keeps a channel's prompt state (llama.cpp) can evaluate each line as it is
heard, so the reply to the next line addressed to the character evaluates little more than that
line. The manager tells :class:`ReadAhead` of every line it hears; one background task builds the
channel's prompt prefix (the system text and history the next reply will start with) and hands it
to the backend. Lines heard while it works are coalesced: each pass reads a channel up to its
newest line, so a flood costs one prompt build per pass, not one per line. Only channels the
backend asks for (``Backend.reads_ahead``) are queued, so servers never pay for it.

A channel can also be *warmed* (:meth:`ReadAhead.warm`): at start, and when its persona changes,
its prompt start is handed to ``Backend.warm`` before anyone has spoken, so the first reply finds
the system prompt evaluated (docs/cpu.md#a-warm-first-reply).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from engine.backends.base import Backend, GenerationRequest
from engine.events import ChatEvent

__all__ = ["Channel", "ChannelLike", "ReadAhead"]

log = logging.getLogger(__name__)


class ChannelLike(Protocol):
    """Where a prompt belongs: a ChatEvent is one, and so is a :class:`Channel` nobody spoke in yet."""

    @property
    def platform(self) -> str: ...
    @property
    def channel_id(self) -> str: ...
    @property
    def server_id(self) -> str | None: ...
    @property
    def channel_key(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Channel:
    platform: str
    channel_id: str
    server_id: str | None = None

    @property
    def channel_key(self) -> str:
        return f"{self.platform}:{self.channel_id}"


class ReadAhead:
    def __init__(
        self, backend: Backend, prefix_for: Callable[[ChannelLike], Awaitable[GenerationRequest | None]]
    ) -> None:
        self.backend = backend
        self.prefix_for = prefix_for  # None: nothing to read now (a reply is being written)
        self._newest: dict[str, ChannelLike] = {}  # channel -> its newest line not read yet
        self._warming: set[str] = set()  # channels to warm: their prompt takes the context
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def heard(self, event: ChatEvent) -> None:
        """Cheap: a dictionary entry, at most one per channel the backend reads ahead for."""
        if not self.backend.reads_ahead(event.channel_key):
            return
        self._queue(event)

    def warm(self, channel: ChannelLike) -> None:
        """Have the backend evaluate the channel's prompt start now, even if another channel or
        adapter holds its context: at start, and after a persona switch, before the first line."""
        if not self.backend.keeps_prompt_state:
            return
        self._warming.add(channel.channel_key)
        self._queue(channel)

    def _queue(self, channel: ChannelLike) -> None:
        self._newest.pop(channel.channel_key, None)
        self._newest[channel.channel_key] = channel
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

    async def _read(self, channel: ChannelLike) -> None:
        warming = channel.channel_key in self._warming
        self._warming.discard(channel.channel_key)
        try:
            request = await self.prefix_for(channel)
            if request is not None:
                await (self.backend.warm(request) if warming else self.backend.read_ahead(request))
        except Exception as exc:  # best effort: the reply reads the same lines itself if this fails
            log.debug("Reading ahead in %s failed: %s", channel.channel_key, exc)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
