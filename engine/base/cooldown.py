"""The one cooldown helper: "has this key waited long enough since it was last used?"

Owns :class:`Cooldown`, in the spirit of discord.py's ``CooldownMapping`` but for one use per
period: keyed by any hashable key, one duration, one :class:`~engine.base.clock.Clock`. Used by
the Twitch chat commands (per command, channel and asker), the manager's fallback reply (per
channel) and the reply scheduler (per chatter, after an answer).

A key is ready when it was never used or at least ``duration_s`` of clock time has passed since
:meth:`Cooldown.trigger`. Keys whose cooldown has run out are forgotten now and then, so a long
stream with many chatters does not grow memory.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Generic, TypeVar

from engine.base.clock import Clock, MonotonicClock

__all__ = ["Cooldown"]

K = TypeVar("K", bound=Hashable)


class Cooldown(Generic[K]):
    def __init__(self, duration_s: float, *, clock: Clock | None = None) -> None:
        if duration_s < 0:
            raise ValueError("a cooldown cannot be negative")
        self.duration_s = duration_s
        self.clock: Clock = clock or MonotonicClock()
        self._used_at: dict[K, float] = {}
        self._next_sweep = -math.inf

    def ends_at(self, key: K) -> float:
        """Clock time at which ``key`` is ready again (``-inf`` when it was never used)."""
        return self._used_at.get(key, -math.inf) + self.duration_s

    def remaining(self, key: K) -> float:
        """Clock seconds until ``key`` is ready; 0 when it is ready now."""
        return max(0.0, self.ends_at(key) - self.clock.now())

    def ready(self, key: K) -> bool:
        return self.ends_at(key) <= self.clock.now()

    def trigger(self, key: K) -> None:
        """Mark ``key`` used now: its cooldown starts over."""
        now = self.clock.now()
        self._used_at[key] = now
        if now >= self._next_sweep:
            self._sweep(now)

    def try_use(self, key: K) -> bool:
        """Use ``key`` if it is ready (and start its cooldown); False, changing nothing, if not."""
        if not self.ready(key):
            return False
        self.trigger(key)
        return True

    def reset(self, key: K) -> None:
        """Forget ``key``: it is ready at once."""
        self._used_at.pop(key, None)

    def __len__(self) -> int:
        return len(self._used_at)

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + max(self.duration_s, 1.0)
        expired = [key for key, used in self._used_at.items() if used + self.duration_s <= now]
        for key in expired:
            del self._used_at[key]
