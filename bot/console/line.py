"""A reply line that grows as it streams and can be redrawn in place, however wide it gets.

A bare carriage return only returns to the start of the last screen row: once a reply wraps onto
several rows, redrawing with it leaves the earlier rows on screen and the reply shows twice. The
rows a line takes are counted with display widths (wide CJK characters and emoji take two
columns), and a redraw moves up that many rows and clears to the end of the screen (ANSI CUU and
ED, which every terminal prompt_toolkit supports understands).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import TextIO

from prompt_toolkit.utils import get_cwidth

__all__ = ["LiveLine", "screen_rows"]


def screen_rows(text: str, columns: int) -> int:
    """How many terminal rows ``text`` (one line, no newline) occupies at ``columns`` wide."""
    width = get_cwidth(text)
    return max(1, -(-width // max(1, columns)))


class LiveLine:
    """``show(snapshot)`` as often as the text changes, then ``end()`` or ``retract()``."""

    def __init__(self, out: TextIO, prefix: str, columns: Callable[[], int] | None = None) -> None:
        self.out = out
        self.prefix = prefix
        self.columns = columns or (lambda: shutil.get_terminal_size().columns)
        self.shown: str | None = None  # None: nothing written yet

    def show(self, text: str) -> None:
        if self.shown is None:
            self._write(self.prefix + text)
        elif text.startswith(self.shown):
            self._write(text[len(self.shown) :])
        else:  # post-processing rewrote earlier text (a stripped speaker label, a final cut)
            self._erase()
            self._write(self.prefix + text)
        self.shown = text

    def end(self) -> None:
        if self.shown is not None:
            self._write("\n")
        self.shown = None

    def retract(self) -> None:
        """Take back what was shown (a reply that failed half-way is not the character's answer)."""
        if self.shown is not None:
            self._erase()
        self.shown = None

    def _erase(self) -> None:
        rows = screen_rows(self.prefix + (self.shown or ""), self.columns())
        up = f"\x1b[{rows - 1}A" if rows > 1 else ""
        self._write(f"\r{up}\x1b[J")

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()
