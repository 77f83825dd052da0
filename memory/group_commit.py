"""Group commit with patience: lines arriving together are stored together, and a batch the
database refuses for a while is retried, never dropped.

Another program holding the write lock past the busy timeout, or a full disk, is an outage that
ends on its own; the lines waiting for it are the ones a caller has not yet been told are stored,
so they stay queued and are retried with backoff (lines arriving meanwhile join the same batch).
The cause is logged once when the outage starts and once when it ends. Two things bound the
wait: past ``max_waiting`` lines a new line is refused at once with :class:`MemoryBackedUp`, and
a batch still refused after ``patience_s`` fails with the outage's error. Either way the caller is
told its line was not stored; no caller is ever told a line is stored that is not.

A batch refused for any other reason is usually one bad line's fault, not the batch's: it is
split in halves and each half written again, down to single lines, so only the line that cannot
be stored is refused (logged once) and every other line of its batch is stored, in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from memory.errors import DatabaseBusy, DiskFull, MemoryBackedUp, MemoryStoreError

__all__ = ["GroupCommit"]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
Waiting = list[tuple[T, "asyncio.Future[R]"]]

# Errors that end on their own: another program's lock, a disk that someone will clear.
TRANSIENT: tuple[type[MemoryStoreError], ...] = (DatabaseBusy, DiskFull)


class GroupCommit(Generic[T, R]):
    """``await commit.submit(item)`` returns once ``item`` is written (``write`` got it in a batch)."""

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[list[R]]],
        translate: Callable[[Exception], MemoryStoreError],
        *,
        max_waiting: int,
        patience_s: float = 120.0,
        first_retry_s: float = 0.05,
        longest_retry_s: float = 2.0,
    ) -> None:
        self._write = write
        self._translate = translate
        self.max_waiting = max_waiting
        self.patience_s = patience_s
        self.first_retry_s = first_retry_s
        self.longest_retry_s = longest_retry_s
        self._pending: Waiting[T, R] = []
        self._in_batch = 0
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._outage_since: float | None = None

    @property
    def waiting(self) -> int:
        """Lines submitted and not yet written."""
        return len(self._pending) + self._in_batch

    async def submit(self, item: T) -> R:
        if self.waiting >= self.max_waiting:
            raise MemoryBackedUp(f"{self.waiting} chat lines already wait for the database; this one was not stored")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        return await future  # a caller that gives up cancels only its own line's wait

    async def close(self) -> None:
        """Let the writer finish: one more try for a batch in an outage, then its lines fail."""
        self._closing = True
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            self._in_batch = len(batch)
            try:
                await self._commit(batch)
            finally:
                self._in_batch = 0

    async def _commit(self, batch: Waiting[T, R]) -> None:
        delay = self.first_retry_s
        began = time.monotonic()
        while True:
            try:
                results = await self._write([item for item, _ in batch])
            except Exception as exc:  # every waiter learns why its line was not stored
                error = self._translate(exc)
                if not isinstance(error, TRANSIENT) and len(batch) > 1:
                    await self._commit_around_bad_lines(batch)
                    return
                out_of_patience = time.monotonic() - began >= self.patience_s
                if not isinstance(error, TRANSIENT) or self._closing or out_of_patience:
                    if isinstance(error, TRANSIENT):
                        log.error(
                            "memory: %d chat lines not stored after %.1f s of retries",
                            len(batch),
                            time.monotonic() - began,
                        )
                    _settle(batch, error=error)
                    return
                self._outage_started(error, len(batch))
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.longest_retry_s)
                # Lines that arrived meanwhile join this batch: a long outage ends in one commit.
                batch, self._pending = batch + self._pending, []
                self._in_batch = len(batch)
                continue
            self._outage_ended(len(batch))
            _settle(batch, results=results)
            return

    async def _commit_around_bad_lines(self, batch: Waiting[T, R]) -> None:
        """Write ``batch`` in ever smaller parts until the lines that fail are alone: those are
        refused, each with one log line, and the rest are stored in their order."""
        parts = [batch]
        while parts:
            part = [(item, future) for item, future in parts.pop(0) if not future.done()]
            if not part:
                continue
            try:
                results = await self._write([item for item, _ in part])
            except Exception as exc:
                error = self._translate(exc)
                if isinstance(error, TRANSIENT):  # an outage began meanwhile: wait for it as usual
                    self._pending = [line for rest in (part, *parts) for line in rest] + self._pending
                    return
                if len(part) > 1:
                    middle = len(part) // 2
                    parts[:0] = [part[:middle], part[middle:]]
                    continue
                log.error("memory: one chat line was refused and not stored (%s); the rest of its batch is", error)
                _settle(part, error=error)
                continue
            _settle(part, results=results)

    def _outage_started(self, error: MemoryStoreError, waiting: int) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            log.error("memory: %s; %d chat lines wait and are retried until it clears", error, waiting)

    def _outage_ended(self, stored: int) -> None:
        if self._outage_since is not None:
            lasted = time.monotonic() - self._outage_since
            self._outage_since = None
            log.warning(
                "memory: the database takes lines again after %.1f s of retries; %d waiting lines stored",
                lasted,
                stored,
            )


def _settle(batch: Waiting[T, R], *, results: list[R] | None = None, error: Exception | None = None) -> None:
    for index, (_, future) in enumerate(batch):
        if future.done():
            continue
        if results is not None:
            future.set_result(results[index])
        else:
            future.set_exception(error or MemoryStoreError("not stored"))
