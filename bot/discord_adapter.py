"""The Discord adapter: discord.py events in, ``ChatEvent``s to the manager, replies back out.

It only translates. Every line it may read is stored and judged (``manager.hear``); lines that address the
bot are answered with a typing indicator and a streamed or whole reply. Backend failures become a
short configurable apology (or silence), never a traceback. ``/persona`` and ``/memory`` live in
``bot.discord_commands``; message splitting and safe mentions in ``bot.discord_delivery``.

The channel's own ``!commands`` (where message content is allowed), timers and proactive talk in
channels listed in COSTAR_STREAM_DISCORD_LIVE_CHANNELS, and a welcome for new members in
COSTAR_STREAM_DISCORD_WELCOME_CHANNEL go through the stream director (``bot.discord_stream``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator

import discord
from discord import app_commands

from bot.discord_commands import build_command_groups, report_command_error
from bot.discord_delivery import ChannelThrottle, ReplyWriter
from bot.discord_events import DISCORD, ChannelRules, to_chat_event
from bot.discord_stream import DiscordSpeaker, join_event
from bot.errors import NETWORK_ERRORS, one_line, unreachable
from engine.errors import EngineError, SettingsError
from engine.events import ChatEvent, Reply
from engine.flow.clock import MonotonicClock
from engine.manager import ConversationManager, HeardLine
from engine.output.limits import DISCORD_LIMITS
from engine.settings import Settings
from engine.stream.director import StreamDirector

__all__ = ["CostarDiscordClient", "DiscordAdapter"]

log = logging.getLogger(__name__)

_CLOSE_GRACE_S = 5.0


class CostarDiscordClient(discord.Client):
    """A discord.Client whose only behaviour is handing events to the adapter."""

    def __init__(self, adapter: DiscordAdapter) -> None:
        # costar never joins a Discord voice channel (the character's voice plays on the overlay), so
        # discord.py's "PyNaCl is not installed, voice will NOT be supported" would only read as if
        # costar's voice were broken: its one-time warnings are switched off before they are logged.
        for warning_flag in ("warn_nacl", "warn_dave"):
            if hasattr(discord.VoiceClient, warning_flag):
                setattr(discord.VoiceClient, warning_flag, False)
        intents = discord.Intents.default()
        intents.message_content = True  # also to be enabled in the Developer Portal (privileged)
        # Welcoming newcomers needs the Server Members intent (privileged too): only ask when used.
        intents.members = adapter.settings.stream.discord_welcome_channel is not None
        # The default for every message, including ones our code forgets to guard: ping nobody.
        super().__init__(intents=intents, allowed_mentions=discord.AllowedMentions.none())
        self.adapter = adapter
        self.tree = app_commands.CommandTree(self)
        self.tree.error(report_command_error)

    async def setup_hook(self) -> None:
        for group in build_command_groups(self.adapter.manager, self.adapter.rules):
            self.tree.add_command(group)
        await self.adapter.sync_commands(self.tree)

    async def on_message(self, message: discord.Message) -> None:
        await self.adapter.on_message(message)

    async def on_member_join(self, member: discord.Member) -> None:
        await self.adapter.on_member_join(member)


class DiscordAdapter:
    """``await DiscordAdapter(settings, manager).start()`` runs until ``close()``."""

    name = "discord"

    def __init__(self, settings: Settings, manager: ConversationManager) -> None:
        self.settings = settings
        self.manager = manager
        self.rules = ChannelRules.from_settings(settings)
        self.throttle = ChannelThrottle(settings.discord.edit_interval_s)
        # No length cut in the engine: long replies are split into several messages here instead.
        manager.platform_limits.setdefault(DISCORD, DISCORD_LIMITS)
        self._in_flight: set[asyncio.Task[object]] = set()
        self._taking_lines = True
        self.client = CostarDiscordClient(self)
        speaker = DiscordSpeaker(self.client, settings.discord.message_limit, settings.discord.send_timeout_s)
        self.director = StreamDirector(
            manager,
            speaker,
            settings=settings.stream,
            clock=MonotonicClock(),
            channels_kept=settings.core.channels_kept,
        )
        for channel_id in settings.stream.discord_live_channels:
            self.director.set_live(DISCORD, channel_id, True)  # opted in: always "live"

    async def start(self) -> None:
        token = self.settings.discord.token
        if token is None or not token.get_secret_value().strip():
            raise SettingsError("DISCORD_TOKEN is not set (see docs/discord.md)")
        await self.director.start()
        try:
            await self.client.start(token.get_secret_value())
        except discord.LoginFailure:
            raise SettingsError(
                "Discord refused DISCORD_TOKEN: copy the bot's token again from the Developer Portal "
                "(Bot → Reset Token; see docs/discord.md)"
            ) from None
        except NETWORK_ERRORS as exc:
            raise unreachable("Discord", exc, "check this machine's internet connection and DNS") from None
        finally:
            await self.director.close()

    async def drain(self, grace_s: float) -> None:
        """Stop taking messages; replies already being written get ``grace_s`` to be sent and stored."""
        self._taking_lines = False
        # discord.py does not wait for running event handlers: wait for them here, before the
        # HTTP session (and then the caller's memory) closes.
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=grace_s)

    async def close(self) -> None:
        if self._taking_lines:
            await self.drain(_CLOSE_GRACE_S)
        await self.director.close()
        await self.client.close()

    async def sync_commands(self, tree: app_commands.CommandTree) -> None:
        if not self.settings.discord.sync_commands:
            return
        guild_id = self.settings.discord.test_guild_id
        if guild_id is None:
            synced = await tree.sync()  # global: can take up to an hour to show up
        else:
            guild = discord.Object(id=guild_id)
            tree.copy_global_to(guild=guild)
            synced = await tree.sync(guild=guild)
        log.info("synced %d slash commands to %s", len(synced), guild_id or "every server")

    async def on_message(self, message: discord.Message) -> None:
        if not self._taking_lines:
            return  # stopping: a message not stored is not acknowledged either
        handler = asyncio.current_task()
        if handler is not None:
            self._in_flight.add(handler)
            handler.add_done_callback(self._in_flight.discard)
        bot_user = self.client.user
        if bot_user is None or message.author.id == bot_user.id:
            return  # our own replies are stored by the manager
        if not self.rules.listens_in(message.channel):
            return
        event = to_chat_event(message, bot_user, self.rules, await self._character_names(message))
        if not event.text.strip():
            return  # attachments or stickers only: nothing to read
        # Heard even when not addressed: a copypasta wave is counted on every line.
        try:
            heard = await self.manager.hear(event)
        except EngineError as exc:  # the database is locked or gone: say so, keep reading
            log.error("could not take a line in discord channel %s: %s", event.channel_id, one_line(exc))
            return
        self.director.chat_heard(heard)
        if await self.director.command(heard):  # the channel's own !commands
            return
        if event.addresses_bot and not heard.blocked:
            await self._answer(message, heard)

    async def on_member_join(self, member: discord.Member) -> None:
        welcome_channel = self.settings.stream.discord_welcome_channel
        if welcome_channel is None or member.bot:
            return
        try:
            heard = await self.manager.hear(join_event(member, welcome_channel))
        except EngineError as exc:
            log.error("could not take a member join in discord server %s: %s", member.guild.id, one_line(exc))
            return
        await self.director.take(heard)

    async def _character_names(self, message: discord.Message) -> tuple[str, ...]:
        """The channel's persona's names: "Pip, what do you think?" addresses the bot too."""
        server_id = str(message.guild.id) if message.guild else None
        card = await self.manager.persona_for(DISCORD, str(message.channel.id), server_id)
        return (card.name, card.display_name)

    async def _answer(self, message: discord.Message, heard: HeardLine) -> None:
        event = heard.event
        writer = ReplyWriter(
            message,
            limit=self.settings.discord.message_limit,
            throttle=self.throttle,
            send_timeout_s=self.settings.discord.send_timeout_s,
        )
        try:
            async with message.channel.typing():
                await self._write_reply(writer, heard)
        except TimeoutError:  # Discord took a send and went silent: drop this reply, free its turn
            log.warning(
                "Discord did not answer in channel %s within %g s; reply dropped",
                event.channel_id,
                self.settings.discord.send_timeout_s,
            )
            await self._retract(writer)
        except EngineError as exc:
            log.warning("no reply in discord channel %s: %s", event.channel_id, exc)
            await self._apologise(writer, event)
        except discord.HTTPException as exc:
            log.warning("Discord refused the reply in channel %s: %s", event.channel_id, exc)

    async def _write_reply(self, writer: ReplyWriter, heard: HeardLine) -> None:
        if self.settings.discord.stream_replies:
            finished: list[Reply] = []

            async def snapshots() -> AsyncGenerator[str, None]:
                async with contextlib.aclosing(self.manager.generate(heard)) as items:
                    async for item in items:
                        if isinstance(item, Reply):
                            finished.append(item)
                        else:
                            yield item

            # Closed at once when showing fails: the generator holds the channel's turn and a slot.
            async with contextlib.aclosing(snapshots()) as shown:
                await writer.stream(shown)
            reply = finished[0] if finished else None
        else:
            reply = await self.manager.reply(heard)
            if reply is not None and reply.text.strip():
                await writer.send_whole(reply.text)
        if reply is not None and writer.sent:
            # Lets a later reply-to-this-message find the stored line.
            await self.manager.link_sent(reply, str(writer.sent[0].id))

    async def _retract(self, writer: ReplyWriter) -> bool:
        try:
            await writer.retract()  # half a reply is never stored: it must not stay in the channel either
        except (discord.HTTPException, TimeoutError) as exc:
            log.warning("could not remove a reply cut short: %s", one_line(exc))
            return False
        return True

    async def _apologise(self, writer: ReplyWriter, event: ChatEvent) -> None:
        if not await self._retract(writer):
            return
        apology = await self.manager.fallback_reply(event, override=self.settings.discord.fallback_reply)
        if apology is None:
            return  # silence was chosen, or an apology went out in this channel moments ago
        try:
            await writer.send_whole(apology)
        except (discord.HTTPException, TimeoutError) as exc:
            log.warning("could not send the fallback reply: %s", exc)
