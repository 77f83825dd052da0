"""Whether a reply is waiting for or using the model: background model work yields to replies.

The manager wraps every reply's turn (queueing for a generation slot, then generating) in
:meth:`ReplyActivity.reply`. Idle-time work such as reflection waits for :attr:`quiet` and is
cancelled as soon as :attr:`started` fires, so it never delays a viewer's answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["ReplyActivity"]


class ReplyActivity:
    def __init__(self) -> None:
        self._active = 0
        self.quiet = asyncio.Event()  # set while no reply waits for or uses the model
        self.quiet.set()
        self.started = asyncio.Event()  # set whenever a reply begins; cleared by whoever watches it

    @property
    def active(self) -> int:
        return self._active

    @contextmanager
    def reply(self) -> Iterator[None]:
        self._active += 1
        self.quiet.clear()
        self.started.set()
        try:
            yield
        finally:
            self._active -= 1
            if self._active == 0:
                self.quiet.set()
