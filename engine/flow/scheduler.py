"""Which chat lines get an answer when chat runs faster than the model (platform-neutral).

Every line is stored by the adapter before it gets here; the scheduler only decides which ones
the character answers and when. Rules, in the order they apply:

- lines that repeat the author's own recent line are duplicates; a text ``copypasta_users``
  chatters pasted is a copypasta wave: neither is answered. Both read the one repeat count the
  line carries (:attr:`engine.heard.HeardLine.repeats`, counted once as it was heard, within
  moderation's ``copypasta_window_s``);
- lines that do not address the character are ignored unless ``answer_unaddressed`` is on;
- the host's own voice (``Role.HOST``, engine.hearing) is never a duplicate, waits out no cooldown
  and goes ahead of every chat line;
- the rest wait in a per-channel queue ordered by priority (addressed, then broadcaster and
  mods, first-time chatters, questions, the rest) and, within a priority, newest first: under a
  flood a fresh reply beats a stale one, and old lines age out instead of delaying every answer;
- a chatter who was just answered waits out a cooldown: their lines stay queued, not dropped;
- a line still queued ``stale_after_s`` after it arrived is dropped as stale;
- at most ``max_in_flight`` generations run at once, and one starts only when its channel's
  send budget (:class:`engine.flow.ratelimit.SendBudget`) has room: the handler gets the reservation
  and settles it on what it actually sends.

``submit`` is synchronous and cheap (a dict lookup and a heap push), so a flood never waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import heapq
import logging
import math
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from engine.base.clock import Clock, MonotonicClock
from engine.base.cooldown import Cooldown
from engine.base.recent import DEFAULT_CAPACITY, RecentlyUsed
from engine.events import ChatEvent, Role
from engine.flow.ratelimit import SendBudget, SendReservation
from engine.heard import HeardLine, Priority, priority_of

__all__ = [
    "Outcome",
    "Priority",
    "ReplyHandler",
    "ReplyScheduler",
    "SchedulerConfig",
    "SchedulerFootprint",
    "priority_of",
]

logger = logging.getLogger(__name__)
# Whose lines never wait out a cooldown: the streamer, typing or speaking (Role.HOST, engine.hearing).
_NO_COOLDOWN = frozenset({Role.BROADCASTER, Role.HOST})


class Outcome(enum.StrEnum):
    QUEUED = "queued"
    REPLIED = "replied"
    NOT_SENT = "not_sent"  # the handler had nothing to send (empty reply, repeat, platform drop)
    FAILED = "failed"
    STALE = "stale"
    DUPLICATE = "duplicate"
    COPYPASTA = "copypasta"
    IGNORED = "ignored"  # not addressed to the character and answer_unaddressed is off
    MODERATED = "moderated"  # input moderation blocked the line: stored, never answered
    QUEUE_FULL = "queue_full"
    FORGOTTEN = "forgotten"  # its author asked to be forgotten while it waited
    CLOSED = "closed"
    REDELIVERED = "redelivered"  # the platform sent a stored message again: its first delivery counts


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    max_in_flight: int = 2
    user_cooldown_s: float = 20.0
    stale_after_s: float = 45.0
    copypasta_users: int = 3
    max_queued_per_channel: int = 500
    answer_unaddressed: bool = False
    channels_kept: int = DEFAULT_CAPACITY  # idle channels beyond this are forgotten, least recent first

    def __post_init__(self) -> None:
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if self.copypasta_users < 2:
            raise ValueError("copypasta_users must be at least 2")
        if self.user_cooldown_s < 0 or self.stale_after_s <= 0:
            raise ValueError("user_cooldown_s cannot be negative; stale_after_s must be positive")


@dataclass(frozen=True, slots=True)
class SchedulerFootprint:
    channels: int
    live: int  # lines queued and not yet answered, dropped or expired
    heap_entries: int  # entries in the channels' heaps, finished ones included
    most_heap_per_live: float  # the worst channel's heap entries per live line (1 when it has none)
    in_flight: int


# The handler generates and sends the reply; True when something was sent.
ReplyHandler = Callable[[HeardLine, SendReservation | None], Awaitable[bool]]
OutcomeListener = Callable[[ChatEvent, Outcome], None]
BudgetLookup = Callable[[ChatEvent], SendBudget | None]


@dataclass(slots=True)
class _Pending:
    heard: HeardLine
    sort_key: tuple[int, int, int]
    arrived: float
    done: bool = False

    def __lt__(self, other: _Pending) -> bool:
        return self.sort_key < other.sort_key

    @property
    def event(self) -> ChatEvent:
        return self.heard.event

    @property
    def priority_class(self) -> tuple[int, int]:
        return self.sort_key[0], self.sort_key[1]


@dataclass(slots=True)
class _Channel:
    heap: list[_Pending] = field(default_factory=list)
    by_arrival: deque[_Pending] = field(default_factory=deque)
    # The same lines per priority class, oldest first: the line to evict is found without a scan.
    by_class: dict[tuple[int, int], deque[_Pending]] = field(default_factory=dict)
    live: int = 0
    # Per author: answered lately, so their next line waits (the broadcaster never does).
    answered: Cooldown[str] | None = None

    def add(self, pending: _Pending) -> None:
        heapq.heappush(self.heap, pending)
        self.by_arrival.append(pending)
        lines = self.by_class.setdefault(pending.priority_class, deque())
        _drop_finished(lines)  # lines finish oldest first at the latest when stale: this stays short
        lines.append(pending)
        self.live += 1

    def finished_one(self) -> None:
        """A queued line was answered, dropped or expired: keep the queues near the live count.

        Finished lines are only marked (a heap cannot remove from the middle); without this they
        stay until the channel drains, which under a flood it never does. Rebuilding once the
        heap holds twice the live lines costs O(1) per line, amortised.
        """
        self.live -= 1
        if len(self.heap) > 2 * self.live:
            # In place: the dispatch loop may be walking these very queues.
            self.heap[:] = [pending for pending in self.heap if not pending.done]
            heapq.heapify(self.heap)
            _keep_live(self.by_arrival)
            for lines in self.by_class.values():
                _keep_live(lines)

    def least_urgent(self) -> _Pending | None:
        """The oldest live line of the lowest class queued."""
        for priority_class in sorted(self.by_class, reverse=True):
            lines = self.by_class[priority_class]
            _drop_finished(lines)
            if lines:
                return lines[0]
        return None


def _keep_live(lines: deque[_Pending]) -> None:
    live = [pending for pending in lines if not pending.done]
    lines.clear()
    lines.extend(live)


def _drop_finished(lines: deque[_Pending]) -> None:
    while lines and lines[0].done:
        lines.popleft()


class ReplyScheduler:
    """Decides which chat lines are answered; see the module docstring for the rules."""

    def __init__(
        self,
        handler: ReplyHandler,
        config: SchedulerConfig | None = None,
        *,
        clock: Clock | None = None,
        budget_for: BudgetLookup | None = None,
        on_outcome: OutcomeListener | None = None,
    ) -> None:
        self.handler = handler
        self.config = config or SchedulerConfig()
        self.clock: Clock = clock or MonotonicClock()
        self.budget_for: BudgetLookup = budget_for or (lambda event: None)
        self.on_outcome = on_outcome
        self.stats: Counter[Outcome] = Counter()
        # A channel with nothing queued may be forgotten (its cooldowns with it) once it is among
        # the least recently active; an answer in flight keeps its own reference.
        self._channels: RecentlyUsed[str, _Channel] = RecentlyUsed(
            self.config.channels_kept, evictable=lambda channel: channel.live == 0
        )
        self._seq = 0
        self._in_flight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._loop_task: asyncio.Task[None] | None = None
        self._closed = False

    # -- deciding ---------------------------------------------------------------------------

    def submit(self, heard: HeardLine) -> Outcome:
        """Queue a line the manager heard for an answer, or say why not. Never waits.

        A line moderation blocked is never answered; it was counted towards duplicates and
        copypasta waves when it was heard, so a wave is recognised however its first lines were judged.
        """
        event = heard.event
        if self._closed:
            return self._emit(event, Outcome.CLOSED)
        if heard.redelivered:
            return self._emit(event, Outcome.REDELIVERED)
        now = self.clock.now()
        channel = self._channels.setdefault(
            event.channel_key, lambda: _Channel(answered=Cooldown(self.config.user_cooldown_s, clock=self.clock))
        )
        # The host saying the same thing twice ("Pip? Pip!") is talk, never spam.
        verdict = None if heard.from_host else self._text_verdict(heard)
        if verdict is not None:
            return self._emit(event, verdict)
        if heard.blocked:
            return self._emit(event, Outcome.MODERATED)
        if not event.addresses_bot and not self.config.answer_unaddressed:
            return self._emit(event, Outcome.IGNORED)
        pending = self._pending_for(heard, now)
        if channel.live >= self.config.max_queued_per_channel and not self._evict_worst(channel, pending):
            return self._emit(event, Outcome.QUEUE_FULL)
        channel.add(pending)
        self._idle.clear()
        self._wake.set()
        return self._emit(event, Outcome.QUEUED)

    def _text_verdict(self, heard: HeardLine) -> Outcome | None:
        """Duplicate or copypasta, from the line's repeat count (every line is counted as heard)."""
        if heard.repeats.repeated_by_author:
            return Outcome.DUPLICATE
        if heard.repeats.authors >= self.config.copypasta_users:
            return Outcome.COPYPASTA
        return None

    def _pending_for(self, heard: HeardLine, now: float) -> _Pending:
        self._seq += 1
        addressing, rank = heard.urgency
        # (addressed first, then social rank, then newest first)
        return _Pending(heard, (addressing, rank, -self._seq), now)

    def _evict_worst(self, channel: _Channel, newcomer: _Pending) -> bool:
        """Make room by dropping the least urgent queued line, if it ranks below the newcomer."""
        worst = channel.least_urgent()
        if worst is None or worst.priority_class < newcomer.priority_class:
            return False
        self._finish(channel, worst, Outcome.QUEUE_FULL)
        return True

    def _finish(self, channel: _Channel, pending: _Pending, outcome: Outcome) -> None:
        pending.done = True
        channel.finished_one()
        self._emit(pending.event, outcome)

    def drop_author(self, platform: str, author_id: str) -> int:
        """Drop every queued line of one viewer (they asked to be forgotten); how many were dropped."""
        dropped = 0
        for channel in self._channels.values():
            for pending in list(channel.by_arrival):
                event = pending.event
                if not pending.done and event.author_id == author_id and event.platform == platform:
                    self._finish(channel, pending, Outcome.FORGOTTEN)
                    dropped += 1
        return dropped

    def _emit(self, event: ChatEvent, outcome: Outcome) -> Outcome:
        self.stats[outcome] += 1
        if self.on_outcome is not None:
            self.on_outcome(event, outcome)
        return outcome

    # -- running ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._dispatch_loop(), name="reply-scheduler")

    async def drain(self, grace_s: float) -> None:
        """Stop taking and starting lines; let generations in flight finish for up to ``grace_s``.

        What is still queued is dropped by :meth:`close` (outcome ``closed``), which follows.
        """
        self._closed = True
        await self._stop_dispatching()
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=grace_s)

    async def _stop_dispatching(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task

    async def close(self) -> None:
        """Stop: cancel generations in flight and drop what is queued."""
        self._closed = True
        await self._stop_dispatching()
        for task in list(self._in_flight):
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        for channel in self._channels.values():
            for pending in list(channel.by_arrival):
                if not pending.done:
                    self._finish(channel, pending, Outcome.CLOSED)
        self._idle.set()

    async def join(self) -> None:
        """Wait until nothing is queued or in flight."""
        await self._idle.wait()

    @property
    def queued(self) -> int:
        return sum(channel.live for channel in self._channels.values())

    def footprint(self) -> SchedulerFootprint:
        """How much the scheduler holds now (benchmarks and tests watch it stay bounded)."""
        return SchedulerFootprint(
            channels=len(self._channels),
            live=self.queued,
            heap_entries=sum(len(channel.heap) for channel in self._channels.values()),
            most_heap_per_live=max(
                (len(channel.heap) / max(1, channel.live) for channel in self._channels.values()), default=0.0
            ),
            in_flight=len(self._in_flight),
        )

    async def _dispatch_loop(self) -> None:
        while True:
            self._wake.clear()
            wait_s = self._start_ready_work()
            if not self._in_flight and self.queued == 0:
                self._idle.set()
            await self._wait_for_wake(wait_s)

    async def _wait_for_wake(self, wait_s: float) -> None:
        if math.isinf(wait_s):
            await self._wake.wait()
            return
        woken = asyncio.ensure_future(self._wake.wait())
        slept = asyncio.ensure_future(self.clock.sleep(wait_s))
        try:
            await asyncio.wait({woken, slept}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            slept.cancel()

    def _start_ready_work(self) -> float:
        """Start every generation that may start now; return clock seconds until one might."""
        now = self.clock.now()
        wait_s = math.inf
        for channel in self._channels.values():
            wait_s = min(wait_s, self._expire_stale(channel, now))
        blocked: set[str] = set()
        while len(self._in_flight) < self.config.max_in_flight:
            choice, retry_s = self._best_ready(now, blocked)
            wait_s = min(wait_s, retry_s)
            if choice is None:
                break
            key, pending = choice
            budget = self.budget_for(pending.event)
            reservation = budget.reserve() if budget is not None else None
            if budget is not None and reservation is None:
                blocked.add(key)
                wait_s = min(wait_s, budget.wait_time())
                continue
            self._launch(self._channels[key], pending, reservation)
        return wait_s

    def _expire_stale(self, channel: _Channel, now: float) -> float:
        arrivals = channel.by_arrival
        while arrivals and (arrivals[0].done or arrivals[0].arrived <= now - self.config.stale_after_s):
            pending = arrivals.popleft()
            if not pending.done:
                self._finish(channel, pending, Outcome.STALE)
        if not arrivals:
            return math.inf
        return arrivals[0].arrived + self.config.stale_after_s - now

    def _best_ready(self, now: float, blocked: set[str]) -> tuple[tuple[str, _Pending] | None, float]:
        """The most urgent queued line whose author is off cooldown, across unblocked channels."""
        best: tuple[str, _Pending] | None = None
        retry_s = math.inf
        for key, channel in self._channels.items():
            if key in blocked:
                continue
            candidate, channel_retry = self._channel_best(channel, now)
            retry_s = min(retry_s, channel_retry)
            if candidate is not None and (best is None or candidate < best[1]):
                best = (key, candidate)
        return best, retry_s

    def _channel_best(self, channel: _Channel, now: float) -> tuple[_Pending | None, float]:
        cooling: list[_Pending] = []
        retry_s = math.inf
        found: _Pending | None = None
        while channel.heap:
            top = channel.heap[0]
            if top.done:
                heapq.heappop(channel.heap)
                continue
            ends = self._cooldown_ends(channel, top.event)
            if ends <= now:
                found = top
                break
            cooling.append(heapq.heappop(channel.heap))
            retry_s = min(retry_s, ends - now)
        for pending in cooling:
            heapq.heappush(channel.heap, pending)
        return found, retry_s

    @staticmethod
    def _cooldown_ends(channel: _Channel, event: ChatEvent) -> float:
        # The broadcaster talks to their co-host; a cooldown there would only get in the way.
        if event.roles & _NO_COOLDOWN or channel.answered is None:
            return -math.inf
        return channel.answered.ends_at(event.author_id)

    def _launch(self, channel: _Channel, pending: _Pending, reservation: SendReservation | None) -> None:
        pending.done = True
        channel.finished_one()
        task = asyncio.create_task(self._answer(channel, pending.heard, reservation))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _answer(self, channel: _Channel, heard: HeardLine, reservation: SendReservation | None) -> None:
        event = heard.event
        outcome = Outcome.FAILED
        try:
            sent = await self.handler(heard, reservation)
            outcome = Outcome.REPLIED if sent else Outcome.NOT_SENT
        except asyncio.CancelledError:
            outcome = Outcome.CLOSED
            raise
        except Exception:
            logger.exception("answering %s in %s failed", event.message_id, event.channel_key)
        finally:
            if reservation is not None:
                reservation.cancel()  # no-op when the handler settled it
            if outcome is Outcome.REPLIED and channel.answered is not None:
                channel.answered.trigger(event.author_id)
            # Leave the in-flight set before waking the loop, so it can tell when all is idle.
            self._in_flight.discard(asyncio.current_task())
            self._emit(event, outcome)
            self._wake.set()
