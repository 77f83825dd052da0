"""The thread-to-asyncio bridge both in-process backends stream through (engine.backends.thread_stream)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing

import pytest

from engine.backends.thread_stream import Emit, chunks_from_thread
from engine.errors import BackendError

# How long a test waits for the worker thread to notice something; far above what it needs.
_PATIENCE_S = 5.0
# An endless producer gives up on its own after this, so a broken bridge fails a test, not hangs it.
_GIVE_UP_S = 4 * _PATIENCE_S


@pytest.fixture
def worker() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-generate")
    yield executor
    executor.shutdown(wait=True, cancel_futures=True)


class EndlessProducer:
    """Emits a token, then another, until told nobody reads; records that it stopped."""

    def __init__(self) -> None:
        self.emitted = 0
        self.started = threading.Event()
        self.stopped = threading.Event()

    def __call__(self, emit: Emit, cancelled: threading.Event) -> int:
        give_up_at = time.monotonic() + _GIVE_UP_S
        try:
            while not cancelled.is_set() and time.monotonic() < give_up_at:
                emit(f"t{self.emitted} ")
                self.emitted += 1
                self.started.set()
                cancelled.wait(0.001)  # a token's worth of work
            return self.emitted
        finally:
            self.stopped.set()


async def test_chunks_arrive_in_the_order_the_thread_emitted_them(worker: ThreadPoolExecutor) -> None:
    results: list[int] = []
    generating_threads: set[str] = set()

    def produce(emit: Emit, cancelled: threading.Event) -> int:
        generating_threads.add(threading.current_thread().name)
        for number in range(500):
            emit(f"{number},")
        return 500

    chunks = [chunk async for chunk in chunks_from_thread(worker, produce, done=results.append, failure="test")]

    assert chunks == [f"{number}," for number in range(500)]
    assert results == [500]  # done() hears what the producer returned, once the stream is read
    assert generating_threads == {next(iter(generating_threads))} and "test-generate" in next(iter(generating_threads))


async def test_an_exception_on_the_thread_reaches_the_consumer_after_the_chunks_before_it(
    worker: ThreadPoolExecutor,
) -> None:
    results: list[int] = []

    def produce(emit: Emit, cancelled: threading.Event) -> int:
        emit("Hello")
        emit(" there")
        raise RuntimeError("the model ran out of memory")

    received: list[str] = []
    with pytest.raises(BackendError, match="tiny backend failed: the model ran out of memory") as caught:
        async for chunk in chunks_from_thread(worker, produce, done=results.append, failure="tiny backend failed"):
            received.append(chunk)

    assert received == ["Hello", " there"]
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert results == []  # nothing finished, nothing reported as done


async def test_cancelling_the_consumer_stops_the_producer_thread(worker: ThreadPoolExecutor) -> None:
    producer = EndlessProducer()
    received: list[str] = []

    async def consume() -> None:
        async for chunk in chunks_from_thread(worker, producer, done=lambda emitted: None, failure="test"):
            received.append(chunk)

    consumer = asyncio.create_task(consume())
    assert await asyncio.to_thread(producer.started.wait, _PATIENCE_S)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer

    assert await asyncio.to_thread(producer.stopped.wait, _PATIENCE_S)
    assert received  # it was streaming when it was cancelled
    # The one worker thread is free again: the next generation runs on it.
    follow_up = [chunk async for chunk in chunks_from_thread(worker, _one_token, done=lambda _: None, failure="test")]
    assert follow_up == ["next"]


async def test_a_consumer_that_stops_reading_early_frees_the_thread(worker: ThreadPoolExecutor) -> None:
    producer = EndlessProducer()
    async with aclosing(chunks_from_thread(worker, producer, done=lambda emitted: None, failure="test")) as chunks:
        async for _chunk in chunks:
            break  # a stop sequence was seen: the rest of the reply is not wanted

    assert await asyncio.to_thread(producer.stopped.wait, _PATIENCE_S)


def _one_token(emit: Emit, cancelled: threading.Event) -> None:
    emit("next")
