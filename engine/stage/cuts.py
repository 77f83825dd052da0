"""Replies the voice stopped before their end (barge-in), stored as cut.

When the host talks over the character, the voice stops (:meth:`engine.voice.speaker.Voice.hush`)
and says how much of each reply it had started to speak (:meth:`ReplyCuts.cut`); the manager says
where each staged reply was stored (:meth:`ReplyCuts.stored`). The two come in either order (the
host may interrupt while the reply is still being written), so whichever comes second hands the
stored row and the spoken words to the writer, which keeps only what was said in memory: the model's
history and recall must not treat the unsaid rest as said.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

__all__ = ["CUT_MARK", "ReplyCuts", "cut_text"]

CUT_MARK = "[cut off]"  # ends a stored reply the host talked over
V = TypeVar("V")
_KEPT = 64  # replies remembered on each side: far more than are ever spoken at once


def cut_text(spoken: str) -> str:
    """What is stored for a reply cut after ``spoken`` (the sentences whose audio had started)."""
    return f"{spoken} {CUT_MARK}" if spoken.strip() else CUT_MARK


class ReplyCuts:
    def __init__(self) -> None:
        self.writer: Callable[[int, str], object] | None = None  # (stored row, spoken words): the manager's
        self._spoken: OrderedDict[str, str] = OrderedDict()  # cue id -> spoken, cut before it was stored
        self._rows: OrderedDict[str, int] = OrderedDict()  # cue id -> stored row, not cut (yet)

    def cut(self, cue_id: str, spoken: str) -> None:
        row = self._rows.pop(cue_id, None)
        if row is not None:
            self._write(row, spoken)
        else:
            _keep(self._spoken, cue_id, spoken)

    def stored(self, cue_id: str, row: int) -> None:
        spoken = self._spoken.pop(cue_id, None)
        if spoken is not None:
            self._write(row, spoken)
        else:
            _keep(self._rows, cue_id, row)

    def _write(self, row: int, spoken: str) -> None:
        if self.writer is not None:
            self.writer(row, spoken)


def _keep(kept: OrderedDict[str, V], cue_id: str, value: V) -> None:
    kept[cue_id] = value
    while len(kept) > _KEPT:
        kept.popitem(last=False)
