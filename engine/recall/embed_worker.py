"""The one worker that embeds chat lines, off the event loop, with a bounded backlog.

The per-line path (``manager.hear``) only calls :meth:`EmbedWorker.offer`: one rule check
(:func:`engine.recall.selection.carries_a_fact`) and a deque append, no await. The worker takes
lines in batches of ``COSTAR_MEMORY_EMBED_BATCH``, embeds each batch in its own single thread
(so a model never runs on the event loop and never takes more than its one core), and stores
the vectors in one transaction. Questions asked at reply time (:meth:`embed_query`) have a thread
of their own, so a reply never waits behind a flood's batches.

Lines that may carry a fact (:func:`engine.recall.selection.carries_a_fact`) are embedded first;
every other line that says something in words (:func:`~engine.recall.selection.worth_embedding`)
waits behind them and is embedded when none of those waits.

In a flood the backlog grows: when it passes half its bound the worker logs that it is behind
(and again when it has caught up, with how long that took); at ``COSTAR_MEMORY_EMBED_BACKLOG``
a line that may carry a fact takes the place of the oldest other line, and otherwise the new line
is dropped; both are counted (``costar_embeddings_dropped``). A dropped or failed line stays
stored and full-text searchable; only recall by meaning misses it. An embedder that fails (the
model missing, the endpoint down) costs that batch, logged once per outage, never a chat line.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from engine.events import ChatEvent
from engine.observability.metrics import Metrics
from engine.recall.embedding import Embedder, Vectors
from engine.recall.selection import carries_a_fact, worth_embedding
from memory import LineVector, MemoryStore, Note, NoteVector, VectorSpace

__all__ = ["EmbedWorker", "EmbeddedHook"]

log = logging.getLogger(__name__)
_NICER = 10  # the embedding thread's scheduling priority below the rest of the bot (Linux: per thread)
# A batch waits for a lull of this long in the lines offered, with no chat line waiting to be
# stored, for at most _LONGEST_WAIT_S: the embedding thread's Python steps (tokenising, pooling)
# hold the GIL, which the per-line path needs, and its model takes a core the database thread
# needs while it writes a flood's batch (no line is offered meanwhile, so that alone looks a lull).
_LULL_S = 0.05
_LONGEST_WAIT_S = 1.0


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None elsewhere (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim if name else None  # type: ignore[assignment]
    except (OSError, AttributeError):
        return None
    return trim


_TRIM = _malloc_trim()


def _embed_and_release(embedder: Embedder, texts: list[str]) -> Vectors:
    """Embed a batch, then hand the allocator's freed pages back to the system.

    Each batch's buffers are of another size (lines of every length); glibc kept the freed ones,
    and resident memory grew 8.5 MB per 10,000 lines in a long stream (bench/long_stream.py,
    docs/memory.md). One ``malloc_trim`` per batch costs about a millisecond in this thread.
    """
    vectors = embedder.embed(texts)
    if _TRIM is not None:
        _TRIM(0)
    return vectors


def _yield_cpu() -> None:
    """Lower the embedding thread's priority, so that on a busy machine chat and replies come first.

    On Linux a thread is a task with its own nice value; elsewhere this does nothing.
    """
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + _NICER)


@dataclass(frozen=True, slots=True)
class _Waiting:
    platform: str
    author_id: str
    message_id: str
    text: str
    # For the hook (:attr:`EmbedWorker.on_embedded`); None for a line that carries no fact by the rule.
    event: ChatEvent | None


# Called with each batch once its vectors are stored: notes by meaning are decided there, from the
# vectors just made, so they cost no model call of their own.
EmbeddedHook = Callable[[list[ChatEvent], Vectors], Awaitable[None]]


class EmbedWorker:
    """``offer(event)`` per line; ``await start()`` / ``await close()`` with the manager."""

    def __init__(
        self, memory: MemoryStore, embedder: Embedder, *, backlog: int, batch: int, metrics: Metrics | None = None
    ) -> None:
        self.memory = memory
        self.embedder = embedder
        self.backlog = backlog
        self.batch = batch
        self.metrics = metrics
        self.counts: Counter[str] = Counter()  # offered, skipped, embedded, dropped_backlog, dropped_error
        self.last_catch_up_s: float | None = None  # how long the last spell behind took to clear
        self._waiting: deque[_Waiting] = deque()  # lines that may carry a fact: embedded first
        self._background: deque[_Waiting] = deque()  # the other lines worth a vector: when none of those waits
        self._in_batch = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="costar-embed", initializer=_yield_cpu)
        # Questions (and notes) have a thread of their own: a reply waiting behind a flood's batches
        # went stale (5 of 968 queued replies sent in bench/flood.py with embeddings on, 32 off).
        self._questions = ThreadPoolExecutor(max_workers=1, thread_name_prefix="costar-embed-question")
        self._task: asyncio.Task[None] | None = None
        self._behind_since: float | None = None
        self._failing = False
        self._last_offer = 0.0  # time.monotonic() of the last line queued
        self.unavailable: str | None = None  # why the model could not load at start; then nothing is embedded
        self.on_embedded: EmbeddedHook | None = None

    @property
    def waiting(self) -> int:
        """Lines offered and not yet embedded (queued or in the batch in progress)."""
        return len(self._waiting) + len(self._background) + self._in_batch

    async def start(self) -> None:
        """Choose the vector space in memory, load the model in the worker thread, start the worker task.

        A model that cannot load is logged, not raised: the bot runs on full-text recall.
        """
        await self.memory.use_vector_space(VectorSpace(self.embedder.name, self.embedder.dimensions))
        load = getattr(self.embedder, "load", None)
        if load is not None:  # before the first line: a flood must not wait for the model to load
            try:
                await asyncio.get_running_loop().run_in_executor(self._thread, load)
            except Exception as exc:  # a model that cannot load will not load at the next line either
                self.unavailable = str(exc)
                log.error("recall by meaning is off, full-text recall goes on: %s", exc)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="costar-embed-worker")

    async def close(self) -> None:
        """Stop after the batch in progress; lines still queued are not embedded (they stay stored)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        # The batch in progress finishes in its thread; waiting for it must not block the event loop.
        await asyncio.to_thread(self._thread.shutdown, wait=True, cancel_futures=True)
        await asyncio.to_thread(self._questions.shutdown, wait=True, cancel_futures=True)

    async def drain(self) -> None:
        """Wait until every line offered so far is embedded (or dropped): benches and tests."""
        while self.waiting:
            self._idle.clear()
            self._wake.set()
            await self._idle.wait()

    # -- the per-line path ------------------------------------------------------------------

    def offer(self, event: ChatEvent) -> bool:
        """Queue a stored viewer line if it may carry a fact; False when skipped or dropped. No await."""
        if self.unavailable is not None:
            self.counts["skipped"] += 1
            return False
        if carries_a_fact(event.text, addressed=event.addresses_bot):
            queue = self._waiting
        elif worth_embedding(event.text):
            queue = self._background
        else:
            self.counts["skipped"] += 1
            return False
        if self.waiting >= self.backlog:
            self._dropped("backlog", 1)
            if queue is self._background or not self._background:
                return False
            self._background.popleft()  # a line that may carry a fact is worth more than the oldest other
        self.counts["offered"] += 1
        self._last_offer = time.monotonic()
        # Only a line that may carry a fact goes to the hook (notes by meaning): tried on every line, the
        # prototypes made a note of one chat line in 45 ("Her husband is 60"), and recall fell (docs/memory.md).
        kept_event = event if queue is self._waiting else None
        queue.append(_Waiting(event.platform, event.author_id, event.message_id, event.text, kept_event))
        self._note_backlog()
        self._wake.set()
        return True

    def forget(self, platform: str, author_id: str) -> int:
        """Drop a forgotten viewer's lines still waiting (their words leave memory at once); how many."""
        removed = 0
        for queue in (self._waiting, self._background):
            kept = [line for line in queue if (line.platform, line.author_id) != (platform, author_id)]
            removed += len(queue) - len(kept)
            queue.clear()
            queue.extend(kept)
        return removed

    # -- questions at reply time ------------------------------------------------------------

    async def embed_query(self, text: str) -> Vectors | None:
        """One question's vector, from the questions' thread; None when the embedder fails (logged)."""
        rows = await self.embed_texts([text])
        if rows is None:
            return None
        vector: Vectors = rows[0]
        return vector

    async def embed_texts(self, texts: Sequence[str]) -> Vectors | None:
        """Rows for ``texts`` from the questions' thread (never behind a batch); None on failure (logged)."""
        if self.unavailable is not None:
            return None
        try:
            return await asyncio.get_running_loop().run_in_executor(self._questions, self.embedder.embed, list(texts))
        except Exception as exc:  # recall falls back to full text; a reply never fails for this
            log.warning("recall by meaning skipped: %s", exc)
            return None

    async def embed_notes(self, notes: Sequence[Note]) -> int:
        """Embed notes and store their vectors (``MemoryStore.nearest_notes`` finds them); how many."""
        rows = await self.embed_texts([note.text for note in notes]) if notes else None
        if rows is None:
            return 0
        return await self.memory.add_note_vectors(
            [NoteVector(note.id, row) for note, row in zip(notes, rows, strict=True)]
        )

    # -- the worker -------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._waiting and not self._background:
                self._caught_up()
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._lull()
            taken = self._next_batch()
            self._in_batch = len(taken)
            try:
                await self._embed_and_store(taken)
            finally:
                self._in_batch = 0

    def _next_batch(self) -> list[_Waiting]:
        """Up to a batch of lines, those that may carry a fact first, the rest filled from the others."""
        taken = [self._waiting.popleft() for _ in range(min(self.batch, len(self._waiting)))]
        room = self.batch - len(taken)
        taken += [self._background.popleft() for _ in range(min(room, len(self._background)))]
        return taken

    async def _lull(self) -> None:
        """Let a flood of lines in first: wait until none came for a moment and none waits to be
        stored (never long)."""
        waited_since = time.monotonic()
        while (now := time.monotonic()) - waited_since < _LONGEST_WAIT_S and (
            now - self._last_offer < _LULL_S or self.memory.lines_waiting()
        ):
            await asyncio.sleep(_LULL_S)

    async def _embed_and_store(self, lines: list[_Waiting]) -> None:
        texts = [line.text for line in lines]
        try:
            vectors = await asyncio.get_running_loop().run_in_executor(
                self._thread, _embed_and_release, self.embedder, texts
            )
            rows = [
                LineVector(line.platform, line.message_id, vector) for line, vector in zip(lines, vectors, strict=True)
            ]
            await self.memory.add_vectors(rows)
        except Exception as exc:  # memory's errors and the embedder's own, which can be of any kind
            self._failed(exc, len(lines))
            return
        if self._failing:
            self._failing = False
            log.warning("embeddings work again")
        self.counts["embedded"] += len(lines)
        hooked = [row for row, line in enumerate(lines) if line.event is not None]
        if self.on_embedded is not None and hooked:
            try:
                await self.on_embedded([event for line in lines if (event := line.event) is not None], vectors[hooked])
            except Exception as exc:  # a note not made never costs the lines their vectors
                log.warning("notes by meaning skipped for %d lines: %s", len(lines), exc)

    # -- telling when it is behind ----------------------------------------------------------

    def _note_backlog(self) -> None:
        if self._behind_since is None and self.waiting > self.backlog // 2:
            self._behind_since = time.monotonic()
            log.warning(
                "embeddings are behind: %d chat lines wait to be embedded (at most %d)", self.waiting, self.backlog
            )
        if self.metrics is not None:
            self.metrics.embed_backlog.set(self.waiting)

    def _caught_up(self) -> None:
        if self.metrics is not None:
            self.metrics.embed_backlog.set(0)
        if self._behind_since is not None:
            self.last_catch_up_s = time.monotonic() - self._behind_since
            self._behind_since = None
            log.warning(
                "embeddings caught up after %.1f s (%d lines dropped so far)",
                self.last_catch_up_s,
                self.counts["dropped_backlog"],
            )

    def _dropped(self, reason: str, count: int) -> None:
        self.counts[f"dropped_{reason}"] += count
        if self.metrics is not None:
            self.metrics.embed_dropped.labels(reason).inc(count)

    def _failed(self, exc: BaseException, count: int) -> None:
        self._dropped("error", count)
        if not self._failing:
            self._failing = True
            log.error("embeddings failed, %d lines not embedded (full-text recall still finds them): %s", count, exc)
