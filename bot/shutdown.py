"""Stopping on SIGTERM and SIGINT: what ``docker stop``, systemd and Ctrl-C send.

In a container the bot is PID 1, and the kernel delivers no signal to PID 1 that has no
handler: without one, ``docker stop`` waits out its grace period and kills the bot, losing
replies in flight. With :func:`stop_signals` the first signal sets an event (stop taking
lines, let replies in flight finish for ``COSTAR_SHUTDOWN_GRACE_S``, close the platforms and
the database, exit 0); a second one says "now": the grace period ends at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["StopRequest", "finished_within_grace", "stop_signals"]

log = logging.getLogger(__name__)

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class StopRequest:
    """Set by the first signal (``requested``); the second sets ``hurry`` too."""

    requested: asyncio.Event = field(default_factory=asyncio.Event)
    hurry: asyncio.Event = field(default_factory=asyncio.Event)

    def signal(self, name: str) -> None:
        if self.requested.is_set():
            log.warning("%s again: stopping now", name)
            self.hurry.set()
            return
        log.info("%s: finishing replies in flight, then stopping", name)
        self.requested.set()

    async def grace(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if a second signal says hurry."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.hurry.wait(), seconds)


@contextlib.contextmanager
def stop_signals() -> Iterator[StopRequest]:
    """Handle SIGTERM and SIGINT on the running loop for the duration of the block."""
    loop = asyncio.get_running_loop()
    request = StopRequest()
    installed = []
    for number in _SIGNALS:
        try:
            loop.add_signal_handler(number, request.signal, signal.Signals(number).name)
            installed.append(number)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
            pass
    try:
        yield request
    finally:
        for number in installed:
            loop.remove_signal_handler(number)


async def finished_within_grace(work: asyncio.Future[Any], stop: StopRequest, grace_s: float) -> bool:
    """Wait for ``work``; if a stop comes first, give it ``grace_s`` more (less on a second signal).

    False when it had to be cancelled: the stop came and the work did not finish in time.
    """
    stopping = asyncio.ensure_future(stop.requested.wait())
    try:
        await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not work.done():
        hurry = asyncio.ensure_future(stop.hurry.wait())
        try:
            await asyncio.wait({work, hurry}, timeout=grace_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            hurry.cancel()
    if work.done():
        return True
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await work
    return False
