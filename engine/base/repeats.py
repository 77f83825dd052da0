"""The one windowed repeat counter: how often, and by how many chatters, a text was seen lately.

Owns :class:`RepeatWindow`. The moderator keeps the one window of chat lines
(:meth:`engine.moderation.moderator.Moderator.count_repeats`) and counts each line once as it is
heard; the :class:`Seen` it says travels on :class:`engine.heard.HeardLine`, where moderation's
copypasta rule reads the copies and the reply scheduler reads a chatter's own repeats and how many
chatters pasted it.

Per channel it keeps the lines seen, oldest first, as ``(time, fingerprint, author)`` plus
running counts per fingerprint (copies, and copies per author), so :meth:`RepeatWindow.see` costs
O(1) amortised per line however long the window is: this runs on every line of a chat flood.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import NamedTuple

from engine.base.recent import DEFAULT_CAPACITY, RecentlyUsed

__all__ = ["NOT_COUNTED", "RepeatWindow", "Seen"]


class Seen(NamedTuple):
    """What the window held for a fingerprint, counting the line just seen."""

    copies: int  # copies of the fingerprint in the window, this line included
    authors: int  # distinct authors of those copies, this line's author included
    by_author: int  # copies by this line's author, this line included

    @property
    def repeated_by_author(self) -> bool:
        """The author had already sent this fingerprint within the window."""
        return self.by_author > 1


# A line nobody counted (a stream event, a line the engine made up): no repeat of anything.
NOT_COUNTED = Seen(copies=0, authors=0, by_author=0)


@dataclass(slots=True)
class _Lines:
    entries: deque[tuple[float, str, Hashable]] = field(default_factory=deque)
    copies: dict[str, int] = field(default_factory=dict)
    authors: dict[str, dict[Hashable, int]] = field(default_factory=dict)


class RepeatWindow:
    """Counts lines per channel within the last ``window_s`` seconds (at most ``max_lines`` of them).

    A line seen at ``t`` still counts at ``t + window_s`` when ``keep_edge`` is true, and no longer
    counts there when it is false.
    """

    def __init__(
        self,
        window_s: float,
        *,
        max_lines: int | None = None,
        keep_edge: bool = True,
        channels_kept: int = DEFAULT_CAPACITY,
    ) -> None:
        if window_s < 0:
            raise ValueError("window_s cannot be negative")
        if max_lines is not None and max_lines < 1:
            raise ValueError("max_lines must be at least 1")
        self.window_s = window_s
        self.max_lines = max_lines
        self.keep_edge = keep_edge
        # The least recently active channels' windows go first (see engine.base.recent).
        self._channels: RecentlyUsed[Hashable, _Lines] = RecentlyUsed(channels_kept)

    def see(self, channel: Hashable, fingerprint: str, now: float, author: Hashable = None) -> Seen:
        """Count one line and say how often its fingerprint is in the window now."""
        lines = self._channels.setdefault(channel, _Lines)
        self._expire(lines, now)
        lines.entries.append((now, fingerprint, author))
        # Plain dicts, not Counters: most chat lines are unique, so this allocates per line.
        copies = lines.copies[fingerprint] = lines.copies.get(fingerprint, 0) + 1
        per_author = lines.authors.get(fingerprint)
        if per_author is None:
            per_author = lines.authors[fingerprint] = {author: 1}
            by_author = 1
        else:
            by_author = per_author[author] = per_author.get(author, 0) + 1
        if self.max_lines is not None and len(lines.entries) > self.max_lines:
            self._forget_oldest(lines)
        return Seen(copies, len(per_author), by_author)

    def copies(self, channel: Hashable, fingerprint: str) -> int:
        """Copies of ``fingerprint`` currently held for ``channel`` (without expiring anything)."""
        lines = self._channels.get(channel)
        return lines.copies.get(fingerprint, 0) if lines is not None else 0

    def __len__(self) -> int:
        """Lines held across all channels."""
        return sum(len(lines.entries) for lines in self._channels.values())

    @property
    def channels(self) -> int:
        """Channels with a window held."""
        return len(self._channels)

    def _expire(self, lines: _Lines, now: float) -> None:
        entries, cutoff = lines.entries, now - self.window_s
        if self.keep_edge:
            while entries and entries[0][0] < cutoff:
                self._forget_oldest(lines)
        else:
            while entries and entries[0][0] <= cutoff:
                self._forget_oldest(lines)

    @staticmethod
    def _forget_oldest(lines: _Lines) -> None:
        _, fingerprint, author = lines.entries.popleft()
        left = lines.copies[fingerprint] - 1
        if left:
            lines.copies[fingerprint] = left
        else:
            del lines.copies[fingerprint]
        per_author = lines.authors[fingerprint]
        if per_author[author] > 1:
            per_author[author] -= 1
        else:
            del per_author[author]
            if not per_author:
                del lines.authors[fingerprint]
