"""The one bridge from a generation running on a worker thread to an async iterator of text chunks.

The in-process backends (transformers, llama.cpp) generate on one dedicated thread: the model is
blocking and not re-entrant. Their text crosses to the event loop here, chunk by chunk, in order:

- the producer gets ``emit`` (thread-safe: it schedules the chunk onto the loop's queue) and a
  ``threading.Event`` that is set once nobody reads any more; it checks it between two tokens and
  ends the generation there, so a reply cut short (stop sequence, length cut, timeout, a cancelled
  task) frees the thread at once;
- what the producer returns goes to ``done`` once the last chunk was read;
- an exception on the thread reaches the consumer as :class:`BackendError` (``failure`` says
  which backend), after the chunks emitted before it.

Close the iterator when stopping early (``contextlib.aclosing``): an async generator left
suspended is only finalised by the garbage collector, and the thread would run on until then.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import Executor
from typing import TypeVar

from engine.errors import BackendError

__all__ = ["Emit", "chunks_from_thread"]

Emit = Callable[[str], None]
Produced = TypeVar("Produced")
_END = object()


class _Failed:
    """The producer's exception, carried through the queue after its last chunk."""

    def __init__(self, error: Exception) -> None:
        self.error = error


async def chunks_from_thread(
    executor: Executor,
    produce: Callable[[Emit, threading.Event], Produced],
    *,
    done: Callable[[Produced], None],
    failure: str,
) -> AsyncGenerator[str, None]:
    """Run ``produce(emit, cancelled)`` on ``executor`` and yield what it emits, in order."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    cancelled = threading.Event()
    produced: list[Produced] = []  # written on the thread before _END is queued, read after it

    def hand_over(item: object) -> None:
        # The loop may be closed already when a cancelled generation ends: nobody waits then.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def run() -> None:
        ending: object = _END
        try:
            produced.append(produce(hand_over, cancelled))
        except Exception as exc:  # reported to the consumer, not raised on a worker thread
            ending = _Failed(exc)
        hand_over(ending)

    job = loop.run_in_executor(executor, run)
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, _Failed):
                raise BackendError(f"{failure}: {item.error}") from item.error
            assert isinstance(item, str)
            yield item
    finally:
        # The consumer stopped (finished, cut the reply short, or was cancelled): the producer
        # sees this between two tokens and ends there.
        cancelled.set()
        if not job.done():
            job.add_done_callback(lambda finished: finished.exception())  # nothing left to report
    await job
    done(produced[0])
