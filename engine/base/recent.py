"""The one bound on per-channel (and per-viewer) state: keep the most recently used keys only.

Owns :class:`RecentlyUsed`, a dict that forgets its least recently used entries past
``capacity``. Every table keyed by a channel uses it (moderation's policies and copypasta
windows, the manager's turn locks, prompt windows and persona look-ups, the scheduler's
queues and duplicate windows, the Discord edit throttle, the Twitch adapter's per-channel
tables, the stream director's activity, proactive, timer and follow tables): Discord threads and direct messages make the number of channels unbounded, and
without it a long-running bot kept every channel it ever saw (about 4.7 KB each).

An entry still in use (a queued line, a held lock, a send still counted in the window) is
not evicted: ``evictable`` says which may go. Busy entries met at the old end are treated as
just used, so a trim looks at a few entries, never the whole table; the table may exceed
``capacity`` for as long as more than ``capacity`` entries are busy at once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

__all__ = ["DEFAULT_CAPACITY", "RecentlyUsed"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

DEFAULT_CAPACITY = 4096
_SCAN = 8  # busy entries looked past per trim before giving up until the next insert


class RecentlyUsed(Generic[K, V]):
    def __init__(self, capacity: int = DEFAULT_CAPACITY, *, evictable: Callable[[V], bool] | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._evictable = evictable
        self._entries: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        """The value for ``key`` (now the most recently used), or None."""
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def peek(self, key: K) -> V | None:
        """The value for ``key`` without counting as a use (a periodic sweep is not activity)."""
        return self._entries.get(key)

    def setdefault(self, key: K, make: Callable[[], V]) -> V:
        """The value for ``key``, created with ``make()`` when missing; either way now the most recent."""
        value = self.get(key)
        if value is None:
            value = self[key] = make()
        return value

    def __getitem__(self, key: K) -> V:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: K, value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        if len(self._entries) > self.capacity:
            self._trim()

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._entries))

    def pop(self, key: K, default: V | None = None) -> V | None:
        return self._entries.pop(key, default)

    def values(self) -> list[V]:
        return list(self._entries.values())

    def items(self) -> list[tuple[K, V]]:
        return list(self._entries.items())

    def clear(self) -> None:
        self._entries.clear()

    def _trim(self) -> None:
        looked = 0
        while len(self._entries) > self.capacity and looked < _SCAN:
            key, value = next(iter(self._entries.items()))
            if self._evictable is None or self._evictable(value):
                del self._entries[key]
            else:
                self._entries.move_to_end(key)
                looked += 1
