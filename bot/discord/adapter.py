"""The Discord adapter: discord.py events in, ``ChatEvent``s to the chat session, replies back out.

It only translates. Every line it may read goes to the one :class:`bot.session.ChatSession` (stored and
judged, then the reply scheduler with Discord's own send limits); the session asks this adapter, its
outlet, to write a reply: a typing indicator and a streamed or whole reply. Backend failures become a
short configurable apology (or silence), never a traceback. ``/persona`` and ``/memory`` live in
``bot.discord.commands``; message splitting and safe mentions in ``bot.discord.delivery``.

The channel's own ``!commands`` (where message content is allowed), timers and proactive talk in
channels listed in COSTAR_STREAM_DISCORD_LIVE_CHANNELS, and a welcome for new members in
COSTAR_STREAM_DISCORD_WELCOME_CHANNEL go through the stream director (``bot.discord.stream``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import discord
from discord import app_commands

from bot.commands import PlatformCommands
from bot.discord.commands import build_command_groups, report_command_error
from bot.discord.delivery import DISCORD_LIMITS, ChannelThrottle, ReplyWriter
from bot.discord.events import DISCORD, ChannelRules, to_chat_event
from bot.discord.settings import discord_settings
from bot.discord.stream import DiscordSpeaker, join_event
from bot.errors import NETWORK_ERRORS, one_line, unreachable
from bot.session import ChatSession, SendLimits
from engine.base.clock import MonotonicClock
from engine.base.recent import RecentlyUsed
from engine.errors import EngineError, SettingsError
from engine.events import Reply
from engine.flow.scheduler import SchedulerConfig
from engine.manager import ConversationManager, HeardLine
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
        intents.members = adapter.discord_settings.welcome_channel is not None
        # The default for every message, including ones our code forgets to guard: ping nobody.
        super().__init__(intents=intents, allowed_mentions=discord.AllowedMentions.none())
        self.adapter = adapter
        self.tree = app_commands.CommandTree(self)
        self.tree.error(report_command_error)

    async def setup_hook(self) -> None:
        for group in build_command_groups(self.adapter.manager, self.adapter.rules, self.adapter.commands):
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
        self.discord_settings = own = discord_settings(settings)
        self.manager = manager
        self.rules = ChannelRules.from_settings(settings)
        self.throttle = ChannelThrottle(own.edit_interval_s)
        # No length cut in the engine: long replies are split into several messages here instead.
        manager.platform_limits.setdefault(DISCORD, DISCORD_LIMITS)
        self._in_flight: set[asyncio.Task[object]] = set()
        self.client = CostarDiscordClient(self)
        self.streams = own.stream_replies
        # The messages waiting for an answer, so the reply can reply to them (bounded like the queue).
        self._asked: RecentlyUsed[str, discord.Message] = RecentlyUsed(4 * settings.core.channels_kept)
        # The shared commands, rendered as slash commands: answers are private, so no cooldown is needed.
        self.commands = PlatformCommands(
            manager,
            clock=MonotonicClock(),
            cooldown_s=0.0,
            prefix="/",
            private_answers=True,
        )
        self._speaker = DiscordSpeaker(self.client, own.message_limit, own.send_timeout_s)
        self.session = ChatSession(
            manager,
            self,
            platform=DISCORD,
            settings=settings,
            send_limits=SendLimits(own.send_limit, own.send_window_s),
            scheduler=SchedulerConfig(
                max_in_flight=settings.backend.max_concurrency,
                user_cooldown_s=own.reply_cooldown_s,
                stale_after_s=own.stale_after_s,
                channels_kept=settings.core.channels_kept,
            ),
            fallback_override=own.fallback_reply,
        )
        for channel_id in own.live_channels:
            self.director.set_live(DISCORD, channel_id, True)  # opted in: always "live"

    @property
    def director(self) -> StreamDirector:
        return self.session.director

    async def start(self) -> None:
        token = self.discord_settings.token
        if token is None or not token.get_secret_value().strip():
            raise SettingsError("DISCORD_TOKEN is not set (see docs/discord.md)")
        await self.session.start()
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
            await self.session.close()

    async def drain(self, grace_s: float) -> None:
        """Stop taking messages; replies already being written get ``grace_s`` to be sent and stored."""
        # discord.py does not wait for running event handlers: wait for them here, before the
        # HTTP session (and then the caller's memory) closes; then for the replies being written.
        self.session.taking_lines = False
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=grace_s)
        await self.session.drain(grace_s)

    async def close(self) -> None:
        if self.session.taking_lines:
            await self.drain(_CLOSE_GRACE_S)
        await self.session.close()
        await self.client.close()

    async def sync_commands(self, tree: app_commands.CommandTree) -> None:
        if not self.discord_settings.sync_commands:
            return
        guild_id = self.discord_settings.test_guild_id
        if guild_id is None:
            synced = await tree.sync()  # global: can take up to an hour to show up
        else:
            guild = discord.Object(id=guild_id)
            tree.copy_global_to(guild=guild)
            synced = await tree.sync(guild=guild)
        log.info("synced %d slash commands to %s", len(synced), guild_id or "every server")

    async def on_message(self, message: discord.Message) -> None:
        if not self.session.taking_lines:
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
        self._asked[event.message_id] = message
        # Heard even when not addressed: a copypasta wave is counted on every line.
        await self.session.take_line(event)

    async def on_member_join(self, member: discord.Member) -> None:
        welcome_channel = self.discord_settings.welcome_channel
        if welcome_channel is None or member.bot:
            return
        await self.session.take_stream(join_event(member, welcome_channel))

    async def _character_names(self, message: discord.Message) -> tuple[str, ...]:
        """The channel's persona's names: "Pip, what do you think?" addresses the bot too."""
        server_id = str(message.guild.id) if message.guild else None
        card = await self.manager.persona_for(DISCORD, str(message.channel.id), server_id)
        return (card.name, card.display_name)

    # -- the session's outlet ---------------------------------------------------------------

    async def send(self, channel_id: str, text: str, *, reply_to: str | None, said: Reply | None) -> str | None:
        """A director's line, a command's answer or an apology, posted in the channel."""
        return await self._speaker.post(channel_id, text, reply_to=reply_to)

    async def write_reply(self, heard: HeardLine, snapshots: AsyncIterator[str]) -> str | None:
        """The reply to the asker's message, with a typing indicator; streamed when ``streams``."""
        event = heard.event
        message = self._asked.pop(event.message_id, None)
        if message is None:
            return None  # forgotten among many newer messages: no message to reply to
        writer = ReplyWriter(
            message,
            limit=self.discord_settings.message_limit,
            throttle=self.throttle,
            send_timeout_s=self.discord_settings.send_timeout_s,
        )
        try:
            async with message.channel.typing():
                await writer.stream(snapshots)
        except TimeoutError:  # Discord took a send and went silent: drop this reply, free its turn
            log.warning(
                "Discord did not answer in channel %s within %g s; reply dropped",
                event.channel_id,
                self.discord_settings.send_timeout_s,
            )
            await self._retract(writer)
            return None
        except EngineError:
            if await self._retract(writer):
                raise  # the session says sorry once the half reply is gone
            return None
        except discord.HTTPException as exc:
            log.warning("Discord refused the reply in channel %s: %s", event.channel_id, exc)
            return None
        # Lets a later reply-to-this-message find the stored line.
        return str(writer.sent[0].id) if writer.sent else None

    async def _retract(self, writer: ReplyWriter) -> bool:
        try:
            await writer.retract()  # half a reply is never stored: it must not stay in the channel either
        except (discord.HTTPException, TimeoutError) as exc:
            log.warning("could not remove a reply cut short: %s", one_line(exc))
            return False
        return True
