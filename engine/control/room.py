"""What the streamer's dashboard watches: a feed of what the bot hears and decides, never blocking.

The manager publishes a ``heard`` item for each stored chat line (with input moderation's verdict)
and an ``outcome`` item when the reply scheduler settles a line (answered, or why not); replies
themselves travel on :mod:`engine.stage`. Platforms register their send budgets and queues here
so the dashboard can show them without knowing any platform.

Items are JSON-ready dicts with a ``type``. With nobody watching, publishing does nothing; a
watcher that falls behind loses its oldest items and is told how many (``lost``).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from engine.events import ChatEvent
from engine.moderation.moderator import Verdict

__all__ = ["ControlRoom", "PlatformStatus", "RoomItem", "RoomWatcher"]

RoomItem = dict[str, Any]
_WATCHER_SIZE = 2000  # items per watcher: 20 s of a 100 lines/s flood


@dataclass(frozen=True, slots=True)
class PlatformStatus:
    """How a platform reports its state: per channel (sends in the window, limit), and lines queued."""

    budgets: Callable[[], Mapping[str, tuple[int, int]]]
    queued: Callable[[], int]


class RoomWatcher:
    """Items for one watcher, oldest first; ``take()`` hands over what piled up since the last call."""

    def __init__(self, room: ControlRoom, size: int) -> None:
        self._room = room
        self._items: collections.deque[RoomItem] = collections.deque(maxlen=size)
        self._arrived = asyncio.Event()
        self.lost = 0  # items pushed out because this watcher fell behind

    def offer(self, item: RoomItem) -> None:
        if len(self._items) == self._items.maxlen:
            self.lost += 1
        self._items.append(item)
        self._arrived.set()

    async def wait(self) -> None:
        await self._arrived.wait()

    def take(self) -> list[RoomItem]:
        items = list(self._items)
        self._items.clear()
        self._arrived.clear()
        return items

    def close(self) -> None:
        self._room._watchers.discard(self)

    def __enter__(self) -> RoomWatcher:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


class ControlRoom:
    def __init__(self) -> None:
        self._watchers: set[RoomWatcher] = set()
        self.platforms: dict[str, PlatformStatus] = {}

    @property
    def watched(self) -> bool:
        return bool(self._watchers)

    def watch(self, *, size: int = _WATCHER_SIZE) -> RoomWatcher:
        watcher = RoomWatcher(self, size)
        self._watchers.add(watcher)
        return watcher

    def publish(self, item: RoomItem) -> None:
        for watcher in list(self._watchers):
            watcher.offer(item)

    def register_platform(self, platform: str, status: PlatformStatus) -> None:
        self.platforms[platform] = status

    def status(self) -> RoomItem:
        """Send budgets per platform and channel, and the lines each platform has queued."""
        return {
            "type": "status",
            "platforms": {
                platform: {
                    "budgets": {channel: list(used) for channel, used in source.budgets().items()},
                    "queued": source.queued(),
                }
                for platform, source in self.platforms.items()
            },
        }

    def heard(self, event: ChatEvent, verdict: Verdict | None) -> None:
        if not self._watchers:
            return
        self.publish(
            {
                "type": "heard",
                "id": event.message_id,
                "channel": event.channel_key,
                "author": event.author_name,
                "text": event.text,
                "addressed": event.addresses_bot,
                "verdict": _verdict_wire(verdict),
                "at": time.time(),
            }
        )

    def outcome(self, event: object, outcome: str) -> None:
        """A reply scheduler's outcome listener: answered, or why a line was not."""
        if not self._watchers or not isinstance(event, ChatEvent):
            return
        self.publish({"type": "outcome", "id": event.message_id, "channel": event.channel_key, "outcome": outcome})


def _verdict_wire(verdict: Verdict | None) -> RoomItem:
    if verdict is None:  # only lines that address the character are judged when heard
        return {"judged": False, "passes": True, "reasons": []}
    return {"judged": True, "passes": verdict.passes, "reasons": list(verdict.reasons)}
