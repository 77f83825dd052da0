"""What the streamer's dashboard watches: a feed of what the bot hears and decides, never blocking.

The mute state lives here too: :meth:`ControlRoom.muted` is the one check every output path
asks (replies, fixed lines, the stream director's lines, platform sends), and
:meth:`ControlRoom.until_muted` stops a reply being written the moment its channel is muted.

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
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from engine.control.review import Approvals, Decision
from engine.events import ChatEvent, Verdict

__all__ = ["EVERYWHERE", "ControlRoom", "PlatformStatus", "RoomItem", "RoomWatcher"]

RoomItem = dict[str, Any]
T = TypeVar("T")
EVERYWHERE = "*"  # the mute scope that silences every channel
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
    def __init__(self, approvals: Approvals | None = None) -> None:
        self.approvals = approvals or Approvals({}, stale_s=120.0)
        self._watchers: set[RoomWatcher] = set()
        self.platforms: dict[str, PlatformStatus] = {}
        self._muted: set[str] = set()  # scopes: EVERYWHERE, a platform, or a channel key
        self._mute_alarms: set[asyncio.Event] = set()  # one per reply being written

    # -- mute -------------------------------------------------------------------------------

    def muted(self, channel_key: str) -> bool:
        """Whether nothing may be said in ``channel_key`` ("twitch:12345") now."""
        platform = channel_key.split(":", 1)[0]
        return bool(self._muted) and bool({EVERYWHERE, platform, channel_key} & self._muted)

    @property
    def muted_scopes(self) -> list[str]:
        return sorted(self._muted)

    def set_muted(self, scope: str, muted: bool) -> None:
        """Mute or unmute ``scope``; replies being written in a muted channel stop at once."""
        if muted:
            self._muted.add(scope)
            for alarm in self._mute_alarms:
                alarm.set()
            for held in list(self.approvals.held.values()):  # a held reply is not sent either
                if self.muted(held.reply.event.channel_key):
                    self.approvals.decide(held.held_id, Decision.DROPPED, held.reply.text)
        else:
            self._muted.discard(scope)
        self.publish({"type": "mute", "scopes": self.muted_scopes})

    async def until_muted(self, channel_key: str, items: AsyncIterator[T]) -> AsyncIterator[T]:
        """``items`` until ``channel_key`` is muted: then the step in progress is cancelled (a
        model mid-sentence, a wait for a generation slot) and nothing more is passed on."""
        alarm = asyncio.Event()
        self._mute_alarms.add(alarm)
        step: asyncio.Future[T] | None = None
        try:
            while not self.muted(channel_key):
                step = asyncio.ensure_future(anext(items))
                while not step.done():
                    ringing = asyncio.ensure_future(alarm.wait())
                    await asyncio.wait({step, ringing}, return_when=asyncio.FIRST_COMPLETED)
                    ringing.cancel()
                    alarm.clear()
                    if not step.done() and self.muted(channel_key):
                        step.cancel()
                        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                            await step
                        return
                try:
                    item = step.result()
                except StopAsyncIteration:
                    return
                if self.muted(channel_key):  # the item came in the same instant as the mute: never shown
                    return
                yield item
        finally:
            self._mute_alarms.discard(alarm)
            if step is not None and not step.done():  # we were cancelled (a console cut) mid-step
                step.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await step  # the generator must stop running before it can be closed
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                await aclose()

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

    def budget_use(self) -> dict[str, float]:
        """Per platform, the busiest channel's sends in the current window over its limit (0 to 1)."""
        use: dict[str, float] = {}
        for platform, source in self.platforms.items():
            shares = [used / limit for used, limit in source.budgets().values() if limit > 0]
            use[platform] = max(shares, default=0.0)
        return use

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
        self.publish({"type": "outcome", "id": event.message_id, "channel": event.channel_key, "outcome": str(outcome)})


def _verdict_wire(verdict: Verdict | None) -> RoomItem:
    if verdict is None:  # only lines that address the character are judged when heard
        return {"judged": False, "passes": True, "reasons": []}
    return {"judged": True, "passes": verdict.passes, "reasons": list(verdict.reasons)}
