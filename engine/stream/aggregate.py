"""Many events, one thank-you: follows arriving together are welcomed in one line naming a few.

(A gift bomb needs no window: Twitch links every single gifted sub of a community gift to it by
``community_gift_id``, so the director thanks the bomb once and only stores the rest.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.base.recent import DEFAULT_CAPACITY, RecentlyUsed
from engine.events import StreamEvent

__all__ = ["FollowBatch", "FollowBatches"]


@dataclass(slots=True)
class FollowBatch:
    first: StreamEvent
    due_at: float
    names: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.names)


class FollowBatches:
    """Per channel, the follows waiting for their welcome; one is due ``window_s`` after its first."""

    def __init__(self, window_s: float, *, channels_kept: int = DEFAULT_CAPACITY) -> None:
        self.window_s = window_s
        # An open batch is a welcome still owed: never dropped; it closes within the window anyway.
        self._open: RecentlyUsed[str, FollowBatch] = RecentlyUsed(channels_kept, evictable=lambda batch: False)

    def add(self, event: StreamEvent, now: float) -> None:
        batch = self._open.get(event.channel_key)
        if batch is None:
            batch = self._open[event.channel_key] = FollowBatch(event, now + self.window_s)
        batch.names.append(event.user_name)

    def due(self, now: float) -> list[FollowBatch]:
        return [batch for batch in self._open.values() if batch.due_at <= now]

    def postpone(self, batch: FollowBatch, until: float) -> None:
        """Keep collecting (the welcome is cooling down) and look again at ``until``."""
        batch.due_at = until

    def close(self, batch: FollowBatch) -> None:
        self._open.pop(batch.first.channel_key, None)

    def __len__(self) -> int:
        return len(self._open)
