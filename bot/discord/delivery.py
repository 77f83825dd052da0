"""Putting the character's text into Discord messages: splitting, safe mentions, throttled streaming.

Discord refuses message content over 2,000 characters (error 50035), so long replies become several
ordered messages cut at a line or sentence end. Every message carries ``allowed_mentions`` that can
ping the asker and nobody else: whatever the model writes (``@everyone``, ``<@&role>``, another
user's ``<@id>``) stays inert text. Streamed replies edit the message in place, at most once per
``edit_interval_s`` per channel (llmcord's pace); discord.py itself sleeps on 429s. Every send, edit
and delete gives up after ``send_timeout_s`` (TimeoutError): discord.py's HTTP session would wait 5
minutes, and a streamed reply holds its channel's turn and a generation slot meanwhile.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import discord

from engine.base.clock import Clock, MonotonicClock
from engine.base.recent import RecentlyUsed
from engine.output.limits import PlatformLimits

__all__ = ["DISCORD_LIMITS", "ChannelThrottle", "ReplyWriter", "mentions_for", "split_message"]

# Discord's output rules: no length cut (long replies are split into several messages here).
DISCORD_LIMITS = PlatformLimits(max_chars=None, neutralise_mass_mentions=True)

_SENTENCE_END = re.compile(r"[.!?…](?:[\"')\]*_~]*)\s")


def _cut_point(window: str) -> int:
    """Where to end a message taken from ``window`` (which is one character past the limit).

    Prefer a blank line, then a line break, then a sentence end, then a space, as long as the cut
    keeps at least half the window; otherwise cut hard.
    """
    limit = len(window) - 1
    floor = limit // 2
    for separator in ("\n\n", "\n"):
        at = window.rfind(separator, 0, limit + 1)
        if at >= floor:
            return at
    sentence_ends = [match.end() - 1 for match in _SENTENCE_END.finditer(window) if match.end() - 1 <= limit]
    if sentence_ends and sentence_ends[-1] >= floor:
        return sentence_ends[-1]
    space = window.rfind(" ", 0, limit + 1)
    return space if space >= floor else limit


def split_message(text: str, limit: int = 2000) -> list[str]:
    """Cut ``text`` into pieces of at most ``limit`` characters, in order, none of them blank."""
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        cut = _cut_point(rest[: limit + 1])
        piece = rest[:cut].rstrip()
        if piece:
            pieces.append(piece)
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def mentions_for(asker: discord.abc.Snowflake) -> discord.AllowedMentions:
    """Only the asker may be pinged; never @everyone, @here, roles or anyone the model names."""
    return discord.AllowedMentions(everyone=False, roles=False, users=[asker], replied_user=True)


@dataclass
class ChannelThrottle:
    """At most one message edit per channel per ``interval_s`` (shared by every reply in the channel)."""

    interval_s: float
    clock: Clock = field(default_factory=MonotonicClock)
    # Only recently active channels matter: an edit a second apart is long forgotten after that.
    _last_edit: RecentlyUsed[int, float] = field(default_factory=RecentlyUsed)

    def ready(self, channel_id: int) -> bool:
        last = self._last_edit.get(channel_id)
        return last is None or self.clock.now() - last >= self.interval_s

    def mark(self, channel_id: int) -> None:
        self._last_edit[channel_id] = self.clock.now()

    async def wait_turn(self, channel_id: int) -> None:
        last = self._last_edit.get(channel_id)
        if last is not None:
            await self.clock.sleep(max(0.0, self.interval_s - (self.clock.now() - last)))
        self.mark(channel_id)


class ReplyWriter:
    """Writes one reply to ``trigger`` (the asker's message) as one or more Discord messages."""

    def __init__(
        self, trigger: discord.Message, *, limit: int, throttle: ChannelThrottle, send_timeout_s: float
    ) -> None:
        self.trigger = trigger
        self.limit = limit
        self.throttle = throttle
        self.send_timeout_s = send_timeout_s
        self.sent: list[discord.Message] = []
        self._shown: list[str] = []  # what each sent message currently reads
        self._mentions = mentions_for(trigger.author)

    @property
    def channel_id(self) -> int:
        return self.trigger.channel.id

    async def send_whole(self, text: str) -> list[discord.Message]:
        await self._show(split_message(text, self.limit))
        return self.sent

    async def stream(self, snapshots: AsyncIterator[str]) -> str:
        """Show cumulative snapshots as they come, editing no faster than the channel throttle allows."""
        latest = ""
        async for snapshot in snapshots:
            latest = snapshot
            if not latest.strip():
                continue
            if not self.sent:  # the first words appear at once; only edits are throttled
                await self._show(split_message(latest, self.limit))
                self.throttle.mark(self.channel_id)
            elif self.throttle.ready(self.channel_id):
                self.throttle.mark(self.channel_id)
                await self._show(split_message(latest, self.limit))
        final = split_message(latest, self.limit)
        if final != self._shown:
            if self.sent:
                await self.throttle.wait_turn(self.channel_id)
            await self._show(final)
        return latest

    async def retract(self) -> None:
        """Delete what this reply showed so far (a reply cut short must not stay half-written)."""
        await self._show([])

    async def _show(self, pieces: list[str]) -> None:
        """Make the sent messages read ``pieces``: edit the changed ones, send new ones, drop extras."""
        for index, piece in enumerate(pieces):
            if index < len(self.sent):
                if self._shown[index] != piece:
                    async with asyncio.timeout(self.send_timeout_s):
                        await self.sent[index].edit(content=piece, allowed_mentions=self._mentions)
                    self._shown[index] = piece
            else:
                async with asyncio.timeout(self.send_timeout_s):
                    message = await self._send(piece, first=index == 0)
                self.sent.append(message)
                self._shown.append(piece)
        while len(self.sent) > len(pieces):  # post-processing shortened the text
            async with asyncio.timeout(self.send_timeout_s):
                await self.sent[-1].delete()
            self.sent.pop()
            self._shown.pop()

    async def _send(self, piece: str, *, first: bool) -> discord.Message:
        # Only the first piece is a reply (one ping); a deleted trigger must not fail the answer.
        reference = self.trigger.to_reference(fail_if_not_exists=False) if first else None
        return await self.trigger.channel.send(piece, reference=reference, allowed_mentions=self._mentions)  # type: ignore[arg-type]
