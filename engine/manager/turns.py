"""What the manager's parts share: each channel's reply turn, and memory errors in engine terms."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from engine.errors import MemoryUnavailable
from memory import MemoryStoreError

__all__ = ["ChannelTurn", "remember"]

T = TypeVar("T")


async def remember(operation: Awaitable[T]) -> T:
    """Await a memory operation; its failure becomes the engine's :class:`MemoryUnavailable`."""
    try:
        return await operation
    except MemoryStoreError as exc:
        raise MemoryUnavailable(str(exc)) from exc


class ChannelTurn:
    """One channel's reply lock, and how many replies hold it or wait for it."""

    __slots__ = ("claims", "lock")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.claims = 0

    @contextmanager
    def claimed(self) -> Iterator[None]:
        # Counted, not read off the lock: between a release and the next waiter waking, an
        # asyncio.Lock looks free, and a second lock for the channel would allow two replies.
        self.claims += 1
        try:
            yield
        finally:
            self.claims -= 1

    def idle(self) -> bool:
        return self.claims == 0
