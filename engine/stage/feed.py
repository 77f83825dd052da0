"""A publish/subscribe feed of :mod:`engine.stage.cues`, in order, that never blocks the publisher.

Publishing is synchronous and cheap: with nobody subscribed it does nothing, which is why the
manager only computes stream snapshots for an unstreamed platform when ``watched`` is true. A
subscriber that falls behind (a stalled browser) loses its oldest cues, never the bot's time.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType

from engine.stage.cues import Cue, HostCaptionCue, NoticeCue, ReplyCue, ReplyState
from engine.stage.cuts import ReplyCuts
from memory.forget import name_pattern

__all__ = ["Stage", "Subscription"]

log = logging.getLogger(__name__)

_SHOWN_KEPT = 16  # finished lines remembered per stage: more than a page shows at once
_QUEUE_SIZE = 512  # cues per subscriber; a reply of a few hundred characters is a few dozen


class Subscription:
    """Cues for one listener, in publishing order; use as ``with stage.subscribe() as cues``."""

    def __init__(self, stage: Stage, wants: Callable[[Cue], bool], size: int) -> None:
        self._stage = stage
        self._wants = wants
        self._queue: asyncio.Queue[Cue] = asyncio.Queue(maxsize=size)
        self.lost = 0  # cues dropped because this listener fell behind

    def offer(self, cue: Cue) -> None:
        if not self._wants(cue):
            return
        if self._queue.full():
            self._queue.get_nowait()
            self.lost += 1
        self._queue.put_nowait(cue)

    async def get(self) -> Cue:
        return await self._queue.get()

    def pending(self) -> int:
        return self._queue.qsize()

    def drop(self, unwanted: Callable[[Cue], bool]) -> int:
        """Take the queued cues ``unwanted`` picks out of the queue, keeping the others' order."""
        kept, dropped = [], 0
        while not self._queue.empty():
            cue = self._queue.get_nowait()
            if unwanted(cue):
                dropped += 1
            else:
                kept.append(cue)
        for cue in kept:
            self._queue.put_nowait(cue)
        return dropped

    def __aiter__(self) -> AsyncIterator[Cue]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Cue]:
        while True:
            yield await self._queue.get()

    def close(self) -> None:
        self._stage._subscriptions.discard(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


class Stage:
    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self._ids = itertools.count(1)
        self._live: dict[str, ReplyCue] = {}  # channel -> its reply still streaming
        # Finished lines perhaps still on screen or being spoken (newest last): what clear() takes down.
        self._shown: collections.OrderedDict[str, ReplyCue | NoticeCue] = collections.OrderedDict()
        self.cuts = ReplyCuts()  # replies the voice stopped (barge-in), to be stored as cut

    @property
    def watched(self) -> bool:
        return bool(self._subscriptions)

    def new_id(self) -> str:
        return str(next(self._ids))

    def subscribe(self, wants: Callable[[Cue], bool] = lambda cue: True, *, size: int = _QUEUE_SIZE) -> Subscription:
        subscription = Subscription(self, wants, size)
        self._subscriptions.add(subscription)
        return subscription

    def publish(self, cue: Cue) -> None:
        if isinstance(cue, ReplyCue):
            if cue.state is ReplyState.STREAMING:
                self._live[cue.channel] = cue
            elif self._live.get(cue.channel, cue).cue_id == cue.cue_id:
                self._live.pop(cue.channel, None)
        self._remember_shown(cue)
        for subscription in list(self._subscriptions):
            subscription.offer(cue)

    def drop_viewer(self, platform: str, user_id: str, names: Sequence[str] = ()) -> int:
        """A forgotten viewer's cues still queued for a listener (a stalled overlay page, the
        voice) are dropped: those answering them, their audio, and those naming them. Returns how
        many were dropped; a reply of theirs still streaming is no longer offered to new pages."""
        named = name_pattern(names) if names else None
        theirs: set[str] = set()  # cue ids of replies and notices about them, for their audio

        def unwanted(cue: Cue) -> bool:
            if isinstance(cue, ReplyCue | NoticeCue | HostCaptionCue):
                about_them = cue.channel.startswith(platform + ":") and cue.viewer_id == user_id
                if about_them or (named is not None and named.search(cue.text)):
                    theirs.add(cue.cue_id)
                    return True
                return False
            return cue.cue_id in theirs

        for channel, cue in list(self._live.items()):
            if unwanted(cue):
                del self._live[channel]
        return sum(subscription.drop(unwanted) for subscription in list(self._subscriptions))

    def _remember_shown(self, cue: Cue) -> None:
        if isinstance(cue, ReplyCue) and cue.state is ReplyState.RETRACTED:
            self._shown.pop(cue.cue_id, None)
        elif isinstance(cue, NoticeCue) or (isinstance(cue, ReplyCue) and cue.state is ReplyState.DONE):
            self._shown[cue.cue_id] = cue
            self._shown.move_to_end(cue.cue_id)
            while len(self._shown) > _SHOWN_KEPT:
                self._shown.popitem(last=False)

    def clear(self, channels: Callable[[str], bool]) -> list[str]:
        """Take down everything on screen in the chosen channels (a mute): each reply streaming
        or finished, each notice, is retracted, which clears its caption and stops its voice.
        Returns the cue ids taken down."""
        showing = [*self._live.values(), *self._shown.values()]
        taken: list[str] = []
        for cue in showing:
            if channels(cue.channel) and cue.cue_id not in taken:
                self.publish(
                    ReplyCue(cue.cue_id, cue.channel, cue.persona_id, cue.persona_name, "", ReplyState.RETRACTED)
                )
                taken.append(cue.cue_id)
        return taken

    def live(self) -> list[ReplyCue]:
        """Replies streaming right now: what a page that just connected should show at once."""
        return list(self._live.values())
