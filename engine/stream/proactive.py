"""When the character may speak unasked: after a silence, while live, a few times an hour at most.

Never while chat is busy (it would talk over people) and never while the stream is offline (on
Discord a channel opts in instead, see COSTAR_STREAM_DISCORD_LIVE_CHANNELS).
"""

from __future__ import annotations

from collections import deque

from engine.base.recent import DEFAULT_CAPACITY, RecentlyUsed
from engine.stream.activity import ChannelActivity, ChannelState

__all__ = ["DEFAULT_HINT", "ProactivePolicy"]

HOUR_S = 3600.0
DEFAULT_HINT = (
    "Chat has been quiet for a while. Say one short thing in character to get chat talking: a question to chat, "
    "a callback to something said earlier, or a line of your own lore. Do not mention that chat is quiet."
)


class ProactivePolicy:
    def __init__(
        self,
        activity: ChannelActivity,
        *,
        silence_s: float,
        per_hour: int,
        busy_lines: int,
        channels_kept: int = DEFAULT_CAPACITY,
    ) -> None:
        self.activity = activity
        self.silence_s = silence_s
        self.per_hour = per_hour
        self.busy_lines = busy_lines
        # Forgetting a channel that spoke within the hour would let it exceed per_hour: kept until then.
        self._spoken: RecentlyUsed[str, deque[float]] = RecentlyUsed(channels_kept, evictable=self._hour_is_over)

    @property
    def enabled(self) -> bool:
        return self.silence_s > 0 and self.per_hour > 0

    def due(self, key: str) -> bool:
        state = self.activity.channels.peek(key)
        if state is None or not self.enabled or not state.live:
            return False
        now = self.activity.clock.now()
        quiet_since = max(state.last_line_at, state.last_spoke_at, state.live_since)
        if now - quiet_since < self.silence_s or self.activity.lines_last_minute(state) >= self.busy_lines:
            return False
        return len(self._spoken_within_hour(key, now)) < self.per_hour

    def said(self, state: ChannelState) -> None:
        key = f"{state.platform}:{state.channel_id}"
        self._spoken_within_hour(key, self.activity.clock.now()).append(self.activity.clock.now())
        self.activity.spoke(state.platform, state.channel_id)

    def _spoken_within_hour(self, key: str, now: float) -> deque[float]:
        spoken = self._spoken.setdefault(key, deque)
        while spoken and spoken[0] <= now - HOUR_S:
            spoken.popleft()
        return spoken

    def tracked(self) -> int:
        """Channels whose proactive lines of the last hour are remembered."""
        return len(self._spoken)

    def _hour_is_over(self, spoken: deque[float]) -> bool:
        return not spoken or spoken[-1] <= self.activity.clock.now() - HOUR_S
