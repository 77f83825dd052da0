"""A sliding-window send budget: never more than ``limit`` sends in any ``window_s`` seconds.

Twitch locks a bot out of chat for 30 minutes when it sends more than 20 messages in 30 s
(100 where it moderates), counted by when Twitch *receives* them. We cannot see that moment, but
it lies between the start of our request and its response. So a send occupies the window from
the moment it is reserved until ``window_s`` after its response arrived: any ``limit + 1``
receipts are then at least ``window_s`` apart, however slow the network was.

    budget = SendBudget(20)
    reservation = budget.reserve()      # None: no room now, see budget.wait_time()
    ... send ...
    reservation.sent()                   # or reservation.cancel() if nothing went out

Stream-event reactions (a raid thank-you) go before ordinary replies within the same budget:
while one waits in :meth:`SendBudget.reserve_urgent`, :meth:`SendBudget.reserve` keeps a slot
free for it.
"""

from __future__ import annotations

from collections import deque

from engine.base.clock import Clock, MonotonicClock

__all__ = ["SendBudget", "SendReservation", "most_in_any_window"]


class SendReservation:
    """One reserved send; settle it with :meth:`sent` or :meth:`cancel` (later calls do nothing)."""

    __slots__ = ("_budget", "settled")

    def __init__(self, budget: SendBudget) -> None:
        self._budget = budget
        self.settled = False

    def sent(self) -> None:
        """The message went out (or may have): it counts until a full window after now."""
        if not self.settled:
            self.settled = True
            self._budget._complete()

    def cancel(self) -> None:
        """Nothing was sent: give the slot back."""
        if not self.settled:
            self.settled = True
            self._budget._release()


class SendBudget:
    """At most ``limit`` sends in any ``window_s`` seconds of ``clock`` time."""

    def __init__(self, limit: int, window_s: float = 30.0, *, clock: Clock | None = None) -> None:
        if limit < 1:
            raise ValueError("a send budget needs a limit of at least 1")
        self._limit = limit
        self.window_s = window_s
        self.clock: Clock = clock or MonotonicClock()
        self._completed: deque[float] = deque()  # response times, oldest first
        self._in_flight = 0
        # reserve_urgent callers, first come first served: ordinary reservations leave them room.
        self._urgent_queue: deque[object] = deque()
        self.total_sent = 0

    @property
    def limit(self) -> int:
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        # Lowering the limit (a bot lost its moderator badge) applies to sends already in the window.
        if value < 1:
            raise ValueError("a send budget needs a limit of at least 1")
        self._limit = value

    def _prune(self, now: float) -> None:
        while self._completed and self._completed[0] <= now - self.window_s:
            self._completed.popleft()

    def in_window(self) -> int:
        """Sends that still count: in flight plus answered within the window."""
        self._prune(self.clock.now())
        return len(self._completed) + self._in_flight

    def reserve(self) -> SendReservation | None:
        if self.in_window() + len(self._urgent_queue) >= self._limit:
            return None
        self._in_flight += 1
        return SendReservation(self)

    async def reserve_urgent(self, max_wait_s: float) -> SendReservation | None:
        """Reserve ahead of ordinary sends, waiting up to ``max_wait_s`` clock seconds for room."""
        deadline = self.clock.now() + max_wait_s
        ticket = object()
        self._urgent_queue.append(ticket)
        try:
            # Only the urgent sends queued ahead hold room: with more waiting than the limit,
            # counting every waiter would keep each one waiting on the others until its deadline.
            while self.in_window() + (ahead := self._urgent_queue.index(ticket)) >= self._limit:
                wait_s = self._wait_time(ahead)
                if self.clock.now() + wait_s > deadline:
                    return None
                await self.clock.sleep(max(wait_s, 0.001))
        finally:
            self._urgent_queue.remove(ticket)
        self._in_flight += 1
        return SendReservation(self)

    def wait_time(self) -> float:
        """Seconds until :meth:`reserve` can succeed; a short poll when only in-flight sends block it."""
        return self._wait_time(len(self._urgent_queue))

    def _wait_time(self, held: int) -> float:
        now = self.clock.now()
        self._prune(now)
        excess = len(self._completed) + self._in_flight + held - self._limit + 1
        if excess <= 0:
            return 0.0
        if excess > len(self._completed):
            return self.window_s / 30  # an in-flight send settles soon; look again then
        return max(0.0, self._completed[excess - 1] + self.window_s - now)

    async def acquire(self) -> SendReservation:
        """Wait for room, then reserve."""
        while (reservation := self.reserve()) is None:
            await self.clock.sleep(max(self.wait_time(), 0.001))
        return reservation

    def _complete(self) -> None:
        self._in_flight -= 1
        self._completed.append(self.clock.now())
        self.total_sent += 1

    def _release(self) -> None:
        self._in_flight -= 1


def most_in_any_window(stamps: list[float], window_s: float = 30.0) -> int:
    """The most stamps that fall inside any half-open window of ``window_s`` (checks a send log)."""
    ordered = sorted(stamps)
    most, first = 0, 0
    for last, stamp in enumerate(ordered):
        while stamp - ordered[first] >= window_s:
            first += 1
        most = max(most, last - first + 1)
    return most
