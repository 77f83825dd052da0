"""What a channel is doing right now: live or not, how busy chat is, when the character last spoke.

Proactive talk and timers both ask it; adapters feed it every chat line (through the director),
the stream's online/offline events and the character's own sends. Times are clock seconds
(:mod:`engine.base.clock`), so a scaled clock runs hours of a stream in seconds.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from engine.base.clock import Clock
from engine.base.recent import DEFAULT_CAPACITY, RecentlyUsed

__all__ = ["ChannelActivity", "ChannelState"]

BUSY_WINDOW_S = 60.0  # "chat is busy" counts the lines of the last minute


@dataclass(slots=True)
class ChannelState:
    platform: str
    channel_id: str
    server_id: str | None = None
    live: bool = False
    live_since: float = 0.0
    lines: int = 0  # every chat line ever heard here
    last_line_at: float = float("-inf")
    last_spoke_at: float = float("-inf")
    recent: deque[float] = field(default_factory=deque)  # line times within BUSY_WINDOW_S


class ChannelActivity:
    def __init__(self, clock: Clock, *, channels_kept: int = DEFAULT_CAPACITY) -> None:
        self.clock = clock
        # Every Discord thread and DM is a channel; a live one is never dropped (timers and
        # proactive talk count its lines), an idle one is forgotten least recent first.
        self.channels: RecentlyUsed[str, ChannelState] = RecentlyUsed(
            channels_kept, evictable=lambda state: not state.live
        )

    def state(self, platform: str, channel_id: str, server_id: str | None = None) -> ChannelState:
        key = f"{platform}:{channel_id}"
        state = self.channels.get(key)
        if state is None:
            state = self.channels[key] = ChannelState(platform, channel_id, server_id)
        if server_id is not None:
            state.server_id = server_id
        return state

    def line(self, platform: str, channel_id: str, server_id: str | None = None) -> None:
        state = self.state(platform, channel_id, server_id)
        now = self.clock.now()
        state.lines += 1
        state.last_line_at = now
        state.recent.append(now)
        self._prune(state, now)

    def spoke(self, platform: str, channel_id: str) -> None:
        self.state(platform, channel_id).last_spoke_at = self.clock.now()

    def set_live(self, platform: str, channel_id: str, live: bool, server_id: str | None = None) -> None:
        state = self.state(platform, channel_id, server_id)
        if live and not state.live:
            state.live_since = self.clock.now()
        state.live = live

    def lines_last_minute(self, state: ChannelState) -> int:
        self._prune(state, self.clock.now())
        return len(state.recent)

    @staticmethod
    def _prune(state: ChannelState, now: float) -> None:
        while state.recent and state.recent[0] <= now - BUSY_WINDOW_S:
            state.recent.popleft()
