"""Discord's side of stream events: a new server member as a ``join`` event, and the speaker that
posts what the :class:`engine.stream.director.StreamDirector` says (welcomes, ``!commands``,
timers and proactive talk in channels that opt in)."""

from __future__ import annotations

import asyncio
import logging

import discord

from bot.discord.events import DISCORD
from engine.events import EventKind, StreamEvent
from engine.stream.outlet import Utterance

__all__ = ["DiscordSpeaker", "join_event"]

log = logging.getLogger(__name__)


def join_event(member: discord.Member, welcome_channel_id: str) -> StreamEvent:
    """A member joining the server, as an event in the channel that welcomes newcomers."""
    joined = member.joined_at.isoformat() if member.joined_at else "now"
    return StreamEvent(
        platform=DISCORD,
        channel_id=welcome_channel_id,
        kind=EventKind.JOIN,
        event_id=f"{member.guild.id}-{member.id}-{joined}",  # a rejoin is a new welcome
        user_id=str(member.id),
        user_name=member.display_name,
        server_id=str(member.guild.id),
    )


class DiscordSpeaker:
    """Posts an utterance in its channel (as a reply to a command's message); the message id."""

    def __init__(self, client: discord.Client, message_limit: int, send_timeout_s: float) -> None:
        self.client = client
        self.message_limit = message_limit
        self.send_timeout_s = send_timeout_s

    async def __call__(self, utterance: Utterance) -> str | None:
        return await self.post(utterance.channel_id, utterance.text, reply_to=utterance.reply_to, kind=utterance.kind)

    async def post(self, channel_id: str, text: str, *, reply_to: str | None, kind: str = "bot") -> str | None:
        channel = self.client.get_channel(int(channel_id))
        if not isinstance(channel, discord.abc.Messageable):
            log.warning("cannot post in discord channel %s: not a text channel the bot can see", channel_id)
            return None
        text = text[: self.message_limit]
        try:
            async with asyncio.timeout(self.send_timeout_s):
                if reply_to is not None and isinstance(channel, discord.TextChannel | discord.Thread):
                    sent = await channel.get_partial_message(int(reply_to)).reply(text, mention_author=False)
                else:
                    sent = await channel.send(text)
        except TimeoutError:
            log.warning("Discord did not answer a %s line in channel %s in time", kind, channel_id)
            return None
        except discord.HTTPException as exc:
            log.warning("Discord refused a %s line in channel %s: %s", kind, channel_id, exc)
            return None
        return str(sent.id)
