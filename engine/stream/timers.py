"""Timers: a line every M minutes, but only after K chat lines since it last ran (Nightbot's rule),
so a timer never talks into an empty chat, and only while the channel is live."""

from __future__ import annotations

from engine.base.recent import DEFAULT_CAPACITY, RecentlyUsed
from engine.stream.activity import ChannelActivity
from personas.stream import StreamTimer

__all__ = ["TimerBoard"]


class TimerBoard:
    def __init__(self, activity: ChannelActivity, *, channels_kept: int = DEFAULT_CAPACITY) -> None:
        self.activity = activity
        # channel -> timer name -> (fired at, lines then); only live channels get an entry
        self._last: RecentlyUsed[str, dict[str, tuple[float, int]]] = RecentlyUsed(channels_kept)

    def due(self, key: str, timers: list[StreamTimer]) -> list[StreamTimer]:
        state = self.activity.channels.peek(key)
        if state is None or not state.live:
            return []
        now = self.activity.clock.now()
        ready = []
        for timer in timers:
            # A timer's first period starts when it is first seen on a live channel.
            fired_at, lines_then = self._last.setdefault(key, dict).setdefault(timer.name, (now, state.lines))
            if now - fired_at >= timer.every_min * 60 and state.lines - lines_then >= timer.min_lines:
                ready.append(timer)
        return ready

    def fired(self, key: str, timer: StreamTimer) -> None:
        state = self.activity.channels[key]
        self._last.setdefault(key, dict)[timer.name] = (self.activity.clock.now(), state.lines)

    def __len__(self) -> int:
        return len(self._last)
