"""The YouTube Data API's daily quota: what each call costs, what is spent today, and the send plan.

Costs, from the API's reference pages (docs/youtube.md has the sources and the arithmetic):
``liveChatMessages.list`` 5 units, ``liveChatMessages.streamList`` 5 units a call (however long the call
stays open), ``liveChatMessages.insert`` 20 units, ``liveBroadcasts.list`` 1 unit.
The project's quota (10,000 units a day by default) resets at midnight Pacific time.

Reading and sending share it. :class:`QuotaPlan` splits it: ``reply_share`` of the day pays for
sending, spread over ``stream_hours`` (one reply every ``send_every_s`` at most), the rest for
reading, which sets the slowest poll (``poll_every_s``; YouTube's own ``pollingIntervalMillis`` can
only make it slower). :class:`QuotaLedger` counts every unit spent, in a file that survives a restart.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

__all__ = [
    "BROADCASTS_LIST_COST",
    "INSERT_COST",
    "LIST_COST",
    "STREAM_LIST_COST",
    "QuotaLedger",
    "QuotaPlan",
    "quota_day",
]

LIST_COST = 5  # liveChatMessages.list
STREAM_LIST_COST = 5  # liveChatMessages.streamList, per call
INSERT_COST = 20  # liveChatMessages.insert
BROADCASTS_LIST_COST = 1  # liveBroadcasts.list
_PACIFIC = ZoneInfo("America/Los_Angeles")  # where Google's daily quota resets at midnight


def quota_day(now: datetime) -> str:
    """The quota day ``now`` falls in (Pacific time, where the quota resets)."""
    return now.astimezone(_PACIFIC).date().isoformat()


@dataclass(frozen=True, slots=True)
class QuotaPlan:
    units_per_day: int
    stream_hours: float
    reply_share: float

    @property
    def send_units(self) -> int:
        return int(self.units_per_day * self.reply_share)

    @property
    def replies(self) -> int:
        """Messages the day's sending share pays for."""
        return self.send_units // INSERT_COST

    @property
    def send_every_s(self) -> float:
        """One reply at most this often, so the sending share lasts the whole stream."""
        return self.stream_hours * 3600 / max(1, self.replies)

    @property
    def poll_every_s(self) -> float:
        """Poll no faster than this, so the reading share lasts the whole stream."""
        read_units = self.units_per_day - self.send_units
        polls = max(1, read_units // LIST_COST)
        return self.stream_hours * 3600 / polls


class QuotaLedger:
    """Units spent today, by reading and by sending, persisted on every change (mode 0600)."""

    def __init__(self, path: Path, plan: QuotaPlan) -> None:
        self.path = path
        self.plan = plan
        self.day = ""
        self.read_units = 0
        self.send_units = 0
        self.exhausted = False  # YouTube said quotaExceeded to a read today: nothing more is sent or read
        self.sending_refused = False  # YouTube said quotaExceeded to a send today: reading goes on
        self._load()

    def _today(self) -> str:
        return quota_day(datetime.now().astimezone())

    def _load(self) -> None:
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            saved = {}
        if isinstance(saved, dict) and saved.get("day") == self._today():
            self.day = saved["day"]
            self.read_units = int(saved.get("read_units", 0))
            self.send_units = int(saved.get("send_units", 0))
            self.exhausted = bool(saved.get("exhausted", False))
            self.sending_refused = bool(saved.get("sending_refused", False))
        else:
            self._new_day()

    def _new_day(self) -> None:
        self.day, self.read_units, self.send_units = self._today(), 0, 0
        self.exhausted = self.sending_refused = False

    def _roll(self) -> None:
        if self.day != self._today():
            self._new_day()

    @property
    def spent(self) -> int:
        return self.read_units + self.send_units

    def may_send(self) -> bool:
        """Whether one more message fits the sending share and the day's quota."""
        self._roll()
        if self.exhausted or self.sending_refused:
            return False
        return (
            self.send_units + INSERT_COST <= self.plan.send_units
            and self.spent + INSERT_COST <= self.plan.units_per_day
        )

    def may_read(self) -> bool:
        self._roll()
        return not self.exhausted and self.spent + LIST_COST <= self.plan.units_per_day

    def spend_read(self, units: int) -> None:
        self._roll()
        self.read_units += units
        self._save()

    def spend_send(self, units: int = INSERT_COST) -> None:
        self._roll()
        self.send_units += units
        self._save()

    def mark_exhausted(self) -> None:
        self._roll()
        self.exhausted = True
        self._save()

    def refuse_sending(self) -> None:
        self._roll()
        self.sending_refused = True
        self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.unlink(missing_ok=True)
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(
                {
                    "day": self.day,
                    "read_units": self.read_units,
                    "send_units": self.send_units,
                    "exhausted": self.exhausted,
                    "sending_refused": self.sending_refused,
                },
                handle,
            )
        partial.replace(self.path)
