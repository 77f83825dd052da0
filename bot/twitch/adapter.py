"""Twitch chat through twitchio 3: EventSub ``channel.chat.message`` in, Helix Send Chat Message out.

Every line is stored and judged (``manager.hear``) before anything else happens to it. Commands are run at
once; everything else goes to the platform-neutral :class:`engine.flow.scheduler.ReplyScheduler`,
which decides what gets answered under a flood and calls back here to generate and send. Each
channel has a :class:`engine.flow.ratelimit.SendBudget`: 20 messages per 30 s, raised to 100 once
Twitch echoes one of our own messages with a moderator or broadcaster badge (and lowered again if
the badge goes away) — going over locks the bot account out of chat for 30 minutes.

Stream events (subs, gifts, raids, follows, cheers, redemptions, online/offline) arrive over
EventSub too (:mod:`bot.twitch.events`; read through :mod:`bot.twitch.eventsub`, so one twitchio cannot
parse is read anyway or said to be lost), go in through the same ``manager.hear`` and then to the
:class:`engine.stream.director.StreamDirector`, whose reactions go out ahead of ordinary replies
within the same send budget. The director also runs the card's ``!commands``, timers and
proactive talk.

The token comes from ``costar twitch auth`` (see :mod:`bot.twitch.auth`), the broadcaster's
optional one from ``costar twitch auth --broadcaster``; refreshed tokens are written back at once. In tests, ``twitchio.http.Route.BASE``/``ID_BASE`` and
``twitchio.eventsub.websockets.WSS`` point twitchio at a local fake Twitch.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import twitchio
from twitchio.eventsub import ChatMessageSubscription
from twitchio.models.eventsub_ import SubscriptionRevoked

from bot.commands import PlatformCommands, SceneSwitcher
from bot.errors import one_line
from bot.session import ChatSession, NotSent, SendLimits
from bot.twitch import events as twitch_events
from bot.twitch import eventsub as twitch_eventsub
from bot.twitch.auth import StoredToken, TokenStore, broadcaster_token_path, token_path, twitch_failure
from bot.twitch.events import Converted, Ignored, TokenScopes, plan_subscriptions
from bot.twitch.eventsub import Delivery
from bot.twitch.limits import TWITCH_LIMITS, twitch_safe
from bot.twitch.settings import TWITCH, twitch_settings
from engine.base.clock import Clock, MonotonicClock
from engine.base.recent import RecentlyUsed
from engine.errors import SettingsError
from engine.events import ChatEvent, Reply, Role
from engine.flow.ratelimit import SendBudget
from engine.flow.scheduler import ReplyScheduler, SchedulerConfig
from engine.moderation.normalize import normalise_text
from engine.settings import Settings
from engine.stream.director import StreamDirector

if TYPE_CHECKING:
    from engine.manager import ConversationManager

__all__ = ["TwitchAdapter", "chat_event_from"]

logger = logging.getLogger(__name__)

PLATFORM = TWITCH


def roles_from(chatter: Any) -> frozenset[Role]:
    """Roles from a twitchio ``Chatter``'s badges."""
    roles = set()
    if chatter.broadcaster:
        roles.add(Role.BROADCASTER)
    elif chatter.moderator:
        roles.add(Role.MODERATOR)
    if chatter.subscriber:
        roles.add(Role.SUBSCRIBER)
    if chatter.vip:
        roles.add(Role.VIP)
    return frozenset(roles)


def chat_event_from(message: twitchio.ChatMessage, *, addressed: bool) -> ChatEvent:
    chatter = message.chatter
    return ChatEvent(
        platform=PLATFORM,
        channel_id=str(message.broadcaster.id),
        author_id=str(chatter.id),
        author_name=chatter.display_name or chatter.name or str(chatter.id),
        text=message.text,
        message_id=message.id,
        roles=roles_from(chatter),
        reply_to_id=message.reply.parent_message_id if message.reply is not None else None,
        addresses_bot=addressed,
    )


_CHAT_LABELS = {ChatMessageSubscription.type: "chat"}  # what the log calls the chat subscription
# Revocations no new subscription can undo, and what the operator can do about each.
_FOR_GOOD = {
    "user_removed": "the Twitch account is gone or suspended",
    "version_removed": "Twitch retired this version of it; update costar",
    "chat_user_banned": "the bot is banned in this channel",
}


class _TwitchClient(twitchio.Client):
    """twitchio's client with our token file and our handlers plugged in."""

    def __init__(self, adapter: TwitchAdapter, token: StoredToken) -> None:
        secret = adapter.twitch_settings.client_secret
        super().__init__(
            client_id=adapter.twitch_settings.client_id or "",
            client_secret=secret.get_secret_value() if secret is not None else None,
            bot_id=token.user_id,
            fetch_client_user=False,
        )
        self._costar = adapter  # not _adapter: twitchio keeps its web adapter there
        twitch_eventsub.install()  # stream events arrive as Deliveries, even those twitchio cannot read

    async def load_tokens(self, path: str | None = None) -> None:
        costar = self._costar
        token = costar.token_store.load()
        validated = await self.add_token(token.access_token, token.refresh_token)
        costar.scopes[token.user_id] = frozenset(validated.scopes)
        broadcaster = costar.broadcaster_store.load_optional()
        if broadcaster is not None:
            validated = await self.add_token(broadcaster.access_token, broadcaster.refresh_token)
            costar.scopes[broadcaster.user_id] = frozenset(validated.scopes)
            costar.broadcaster = broadcaster
        self._persist()  # add_token may have refreshed an expiring token

    async def save_tokens(self, path: str | None = None) -> None:
        self._persist()

    def _persist(self) -> None:
        costar = self._costar
        for user_id, store in ((self.bot_id, costar.token_store), (costar.broadcaster_id, costar.broadcaster_store)):
            current = self.tokens.get(user_id or "")
            if current is not None:
                store.update(current["token"], current["refresh"])

    async def event_token_refreshed(self, payload: Any) -> None:
        self._persist()

    async def setup_hook(self) -> None:
        await self._costar._subscribe()

    async def event_message(self, payload: twitchio.ChatMessage) -> None:
        await self._costar._on_message(payload)

    # Stream events: twitchio names the handler after the subscription type, and hands each over
    # as a bot.twitch.eventsub.Delivery (twitchio's object and the raw event beside it).
    async def event_chat_notification(self, payload: Delivery) -> None:
        await self._costar._on_notification(payload, twitch_events.from_notification)

    async def event_follow(self, payload: Delivery) -> None:
        await self._costar._on_notification(payload, twitch_events.from_follow)

    async def event_cheer(self, payload: Delivery) -> None:
        await self._costar._on_notification(payload, twitch_events.from_cheer)

    async def event_custom_redemption_add(self, payload: Delivery) -> None:
        await self._costar._on_notification(payload, twitch_events.from_redemption)

    async def event_stream_online(self, payload: Delivery) -> None:
        await self._costar._on_notification(payload, twitch_events.from_stream_online)

    async def event_stream_offline(self, payload: Delivery) -> None:
        await self._costar._on_notification(payload, twitch_events.from_stream_offline)

    async def event_subscription_revoked(self, payload: SubscriptionRevoked) -> None:
        await self._costar._on_revoked(payload)

    async def event_websocket_welcome(self, payload: Any) -> None:
        await self._costar._on_welcome()


class TwitchAdapter:
    """``await TwitchAdapter(settings, manager).start()`` runs until :meth:`close`."""

    def __init__(
        self,
        settings: Settings,
        manager: ConversationManager,
        *,
        clock: Clock | None = None,
        scenes: SceneSwitcher | None = None,
    ) -> None:
        self.twitch_settings = twitch = twitch_settings(settings)
        if not twitch.client_id:
            raise SettingsError("TWITCH_CLIENT_ID is not set")
        self.settings = settings
        self.manager = manager
        manager.platform_limits.setdefault(PLATFORM, TWITCH_LIMITS)
        self.clock: Clock = clock or MonotonicClock()
        self.token_store = TokenStore(token_path(settings))
        kept = settings.core.channels_kept
        self.commands = PlatformCommands(
            manager,
            clock=self.clock,
            cooldown_s=twitch.command_cooldown_s,
            forgets_per_minute=twitch.forgets_per_minute,
            scenes=scenes,
        )
        self.session = ChatSession(
            manager,
            self,
            platform=PLATFORM,
            settings=settings,
            send_limits=SendLimits(twitch.send_limit),
            scheduler=SchedulerConfig(
                max_in_flight=settings.backend.max_concurrency,
                user_cooldown_s=twitch.reply_cooldown_s,
                stale_after_s=twitch.stale_after_s,
                answer_unaddressed=twitch.chime_in,
                channels_kept=kept,
            ),
            commands=self.commands,
            clock=self.clock,
            on_persona_changed=self._forget_names,
        )
        self.broadcaster_store = TokenStore(broadcaster_token_path(settings))
        self.broadcaster: StoredToken | None = None
        self.scopes: dict[str, frozenset[str]] = {}  # user id -> the scopes Twitch says its token has
        self.events_on: dict[str, list[str]] = {}  # channel id -> the stream events subscribed there
        self.ready = asyncio.Event()
        self.bot: StoredToken | None = None
        self._client: _TwitchClient | None = None
        self._name_patterns: RecentlyUsed[str, re.Pattern[str]] = RecentlyUsed(kept)
        self._last_sent: RecentlyUsed[str, str] = RecentlyUsed(kept)
        self._unread_told: set[tuple[str, bool]] = set()  # (kind, lost) said once each
        self._ignored_told: set[str] = set()  # notice kinds costar keeps no event of, said once each
        self._channel_names: dict[str, str] = {}  # channel id -> name, for the log

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self.bot = self.token_store.load()
        self._client = _TwitchClient(self, self.bot)
        await self.session.start()
        try:
            token = None if self.twitch_settings.client_secret else self.bot.access_token
            await self._client.start(token, with_adapter=False)
        except twitchio.TwitchioException as exc:
            raise twitch_failure(exc, "connecting") from None  # its text can quote a token
        finally:
            await self.session.close()

    @property
    def scheduler(self) -> ReplyScheduler:
        assert self.session.scheduler is not None
        return self.session.scheduler

    @property
    def director(self) -> StreamDirector:
        return self.session.director

    @property
    def broadcaster_id(self) -> str | None:
        return self.broadcaster.user_id if self.broadcaster is not None else None

    async def drain(self, grace_s: float) -> None:
        """Stop taking chat lines; replies already being written get ``grace_s`` to be sent."""
        await self.session.drain(grace_s)

    async def close(self) -> None:
        await self.session.close()
        if self._client is not None:
            await self._client.close()

    async def _subscribe(self) -> None:
        assert self._client is not None and self.bot is not None
        logins = [c.strip().lower() for c in self.twitch_settings.channels.split(",") if c.strip()] or [self.bot.login]
        users = await self._client.fetch_users(logins=logins)
        missing = set(logins) - {u.name for u in users if u.name}
        if missing:
            logger.warning("Twitch has no channel named %s", ", ".join(sorted(missing)))
        for user in users:
            budget = self.budget_for(str(user.id))
            if str(user.id) == self.bot.user_id:
                budget.limit = self.twitch_settings.moderator_send_limit
            subscription = ChatMessageSubscription(broadcaster_user_id=str(user.id), user_id=self.bot.user_id)
            await self._client.subscribe_websocket(subscription, token_for=self.bot.user_id)
            logger.info("reading chat in #%s", user.name)
            self.manager.warm(PLATFORM, str(user.id))  # its first reply finds the persona's prompt read
            await self._subscribe_events(str(user.id), user.name or str(user.id))
        self.ready.set()

    async def _subscribe_events(self, channel_id: str, channel_name: str) -> None:
        """Subscribe to every stream event the tokens allow; log what is on and what is missing."""
        assert self._client is not None and self.bot is not None
        self._channel_names[channel_id] = channel_name
        planned, skipped = plan_subscriptions(channel_id, *self._token_scopes())
        on: list[str] = []
        for wanted, token_user in planned:
            try:
                await self._client.subscribe_websocket(wanted.build(channel_id, token_user), token_for=token_user)
            except twitchio.HTTPException as exc:  # the token's scopes changed since it was validated
                skipped.append(
                    (wanted, f"Twitch refused it ({exc.status}); it needs scope {' or '.join(wanted.scopes)}")
                )
                continue
            on.append(wanted.label)
        self.events_on[channel_id] = on
        logger.info("stream events in #%s: %s", channel_name, ", ".join(on) or "none")
        for missing, why in skipped:
            logger.warning("stream events in #%s: no %s: %s", channel_name, missing.label, why)
        await self._note_live(channel_id)

    async def _on_revoked(self, revoked: SubscriptionRevoked) -> None:
        """Twitch ended a subscription: it is off now; made again where that can work."""
        channel_id = str(revoked.raw.get("condition", {}).get("broadcaster_user_id") or "")
        channel = self._channel_names.get(channel_id, channel_id)
        wanted = twitch_events.subscription_for(revoked.type)
        label = wanted.label if wanted is not None else _CHAT_LABELS.get(revoked.type, revoked.type)
        on = self.events_on.get(channel_id, [])
        if label in on:
            on.remove(label)
        reason = revoked.reason.value
        logger.warning("Twitch revoked the %s subscription in #%s (%s)", label, channel, reason)
        if reason in _FOR_GOOD:
            logger.warning("stream events in #%s: no %s: %s", channel, label, _FOR_GOOD[reason])
            return
        await self._subscribe_again(channel_id, channel, revoked.type, wanted)

    async def _subscribe_again(
        self, channel_id: str, channel: str, twitch_type: str, wanted: twitch_events.EventSubscription | None
    ) -> None:
        assert self._client is not None and self.bot is not None
        if wanted is None:  # chat itself, or a type costar did not make: only chat is made again
            if twitch_type not in _CHAT_LABELS:
                return
            subscription: Any = ChatMessageSubscription(broadcaster_user_id=channel_id, user_id=self.bot.user_id)
            token_user, label = self.bot.user_id, _CHAT_LABELS[twitch_type]
        else:
            planned = dict(plan_subscriptions(channel_id, *self._token_scopes())[0])
            if wanted not in planned:
                logger.warning("stream events in #%s: no %s: no token allows it any more", channel, wanted.label)
                return
            token_user, label = planned[wanted], wanted.label
            subscription = wanted.build(channel_id, token_user)
        try:
            await self._client.subscribe_websocket(subscription, token_for=token_user)
        except twitchio.TwitchioException as exc:
            why = one_line(twitch_failure(exc, "subscribing again"))
            login = "costar twitch auth" if token_user == self.bot.user_id else "costar twitch auth --broadcaster"
            logger.warning("stream events in #%s: no %s: %s; log in again with `%s`", channel, label, why, login)
            return
        if wanted is not None:
            self.events_on.setdefault(channel_id, []).append(wanted.label)
        logger.info("subscribed to %s in #%s again", label, channel)

    def _token_scopes(self) -> tuple[TokenScopes, TokenScopes | None]:
        assert self.bot is not None
        bot = TokenScopes(self.bot.user_id, self.scopes.get(self.bot.user_id, frozenset()))
        owner = self.broadcaster
        broadcaster = TokenScopes(owner.user_id, self.scopes.get(owner.user_id, frozenset())) if owner else None
        return bot, broadcaster

    async def _on_welcome(self) -> None:
        """An EventSub socket (re)connected: a stream.offline sent meanwhile is lost, so ask Helix."""
        if not self.ready.is_set():
            return  # the first connection: _subscribe reads it once all subscriptions are made
        for channel_id in list(self._channel_names):
            await self._note_live(channel_id)

    async def _note_live(self, channel_id: str) -> None:
        """Whether the stream is live now; later stream.online/offline events keep it current."""
        assert self._client is not None
        try:
            live = [stream async for stream in self._client.fetch_streams(user_ids=[channel_id], type="live")]
        except twitchio.HTTPException as exc:
            logger.warning("could not tell whether %s is live (%s); assuming offline until it starts", channel_id, exc)
            return
        self.director.set_live(PLATFORM, channel_id, bool(live))

    def budget_for(self, channel_id: str) -> SendBudget:
        budget = self.session.budget_for(channel_id)
        assert budget is not None  # Twitch always has send limits
        return budget

    # -- incoming ---------------------------------------------------------------------------

    async def _on_message(self, message: twitchio.ChatMessage) -> None:
        assert self.bot is not None
        if not self.session.taking_lines:
            return  # stopping: a line not stored is not acknowledged either
        if str(message.chatter.id) == self.bot.user_id:
            self._note_own_badges(message)
            return
        await self.session.take_line(chat_event_from(message, addressed=await self._addresses_bot(message)))

    async def _on_notification(self, delivery: Delivery, convert: Callable[[Delivery], Converted]) -> None:
        """A stream event from EventSub: read (even when twitchio could not), converted, heard."""
        if delivery.problem is not None:
            self._report_unread(delivery)
        if delivery.parsed is None:
            return
        try:
            converted = convert(delivery)
        except Exception as exc:  # a shape neither twitchio nor costar expected: say so, lose only this one
            self._report_unread(replace(delivery, parsed=None, problem=f"{type(exc).__name__}: {exc}"))
            return
        if isinstance(converted, Ignored):
            self._report_ignored(converted)
            return
        await self.session.take_stream(converted)

    def _report_unread(self, delivery: Delivery) -> None:
        """Once per kind: which event twitchio could not read, and whether costar read it anyway."""
        lost = delivery.parsed is None
        if (delivery.kind, lost) in self._unread_told:
            return
        self._unread_told.add((delivery.kind, lost))
        if lost:
            logger.error("lost a twitch %s event: it could not be read (%s)", delivery.kind, delivery.problem)
        else:
            logger.warning(
                "twitchio could not read a twitch %s event (%s); costar read it with the missing fields filled in",
                delivery.kind,
                delivery.problem,
            )

    def _report_ignored(self, ignored: Ignored) -> None:
        if ignored.malformed:
            logger.warning("twitch %s not stored: %s", ignored.kind, ignored.why)
        elif ignored.kind not in self._ignored_told:
            self._ignored_told.add(ignored.kind)
            logger.info("twitch %s not stored: %s", ignored.kind, ignored.why)

    def _note_own_badges(self, message: twitchio.ChatMessage) -> None:
        """Twitch echoes our messages with our badges: the cheapest way to learn we moderate."""
        moderates = bool(message.chatter.moderator or message.chatter.broadcaster)
        twitch = self.twitch_settings
        limit = twitch.moderator_send_limit if moderates else twitch.send_limit
        budget = self.budget_for(str(message.broadcaster.id))
        if budget.limit != limit:
            logger.info("send limit in #%s is now %d per 30 s", message.broadcaster.name, limit)
            budget.limit = limit

    async def _addresses_bot(self, message: twitchio.ChatMessage) -> bool:
        assert self.bot is not None
        if message.reply is not None and str(message.reply.parent_user.id) == self.bot.user_id:
            return True
        pattern = await self._names_in(str(message.broadcaster.id))
        return pattern.search(message.text) is not None

    def _forget_names(self, channel_id: str) -> None:
        """The persona changed: the names the character answers to are read again."""
        self._name_patterns.pop(channel_id, None)

    async def _names_in(self, channel_id: str) -> re.Pattern[str]:
        """Names the character answers to in this channel: persona, bot login, COSTAR_BOT_NAME."""
        pattern = self._name_patterns.get(channel_id)
        if pattern is None:
            assert self.bot is not None
            card = await self.manager.persona_for(PLATFORM, channel_id)
            names = {card.name, card.display_name, self.bot.login, self.settings.core.bot_name or ""}
            alternatives = "|".join(re.escape(n) for n in sorted(names - {""}, key=len, reverse=True))
            pattern = re.compile(rf"(?<!\w)@?(?:{alternatives})(?!\w)", re.IGNORECASE)
            self._name_patterns[channel_id] = pattern
        return pattern

    # -- outgoing: the session's outlet -----------------------------------------------------

    async def send(self, channel_id: str, text: str, *, reply_to: str | None, said: Reply | None) -> str | None:
        """Twitch's message id, or None when Twitch dropped it; NotSent when nothing was sent."""
        return await self._send_to(channel_id, text, reply_to=reply_to)

    async def _send_to(self, channel_id: str, text: str, *, reply_to: str | None) -> str | None:
        assert self._client is not None and self.bot is not None
        safe = twitch_safe(text)
        if safe is None or normalise_text(safe) == self._last_sent.get(channel_id):
            raise NotSent  # Twitch drops an identical message within 30 s anyway
        channel = self._client.create_partialuser(channel_id)
        try:
            # twitchio's HTTP session would wait 5 minutes (aiohttp's default), holding a scheduler slot.
            async with asyncio.timeout(self.twitch_settings.send_timeout_s):
                sent = await channel.send_message(
                    safe, self.bot.user_id, token_for=self.bot.user_id, reply_to_message_id=reply_to
                )
        except TimeoutError:
            logger.warning(
                "Twitch did not answer a send to %s within %g s", channel_id, self.twitch_settings.send_timeout_s
            )
            return None
        except twitchio.MessageRejectedError as exc:
            logger.warning("Twitch dropped our message in %s: %s (%s)", channel_id, exc.message, exc.code)
            return None
        except twitchio.HTTPException as exc:
            logger.warning("sending to %s failed: %s", channel_id, one_line(twitch_failure(exc, "sending")))
            return None
        self._last_sent[channel_id] = normalise_text(safe)
        return sent.id
