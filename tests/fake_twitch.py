"""A local fake of the Twitch APIs the bot touches, for driving the real twitchio client in tests.

One aiohttp server on 127.0.0.1 serves three things, reached by pointing twitchio's own seams at
it (``twitchio.http.Route.BASE`` / ``ID_BASE`` and ``twitchio.eventsub.websockets.WSS``):

- the id service: ``POST /oauth2/token`` (client credentials, refresh, device code),
  ``POST /oauth2/device``, ``GET /oauth2/validate``;
- Helix: ``GET /helix/users``, ``POST``/``GET /helix/eventsub/subscriptions``,
  ``POST /helix/chat/messages`` (500 characters, ``is_sent``/``drop_reason`` like the real one);
- the EventSub websocket ``/ws``: ``session_welcome`` on connect, ``session_keepalive`` on a
  timer, ``channel.chat.message`` notifications sent by the test with :meth:`FakeTwitch.chat`,
  and stream events (:meth:`FakeTwitch.raid`, :meth:`~FakeTwitch.community_gift`,
  :meth:`~FakeTwitch.follow`, :meth:`~FakeTwitch.cheer`, :meth:`~FakeTwitch.redemption`,
  :meth:`~FakeTwitch.stream_online`, ...) with the payloads EventSub documents;
- ``GET /helix/streams``: the channels in ``live``.

Connection faults, as Twitch has them: :meth:`FakeTwitch.drop_eventsub` cuts every EventSub
socket (its subscriptions become ``websocket_disconnected``, as on Twitch, and the client must
connect again and create them anew); :meth:`FakeTwitch.ask_to_reconnect` sends ``session_reconnect`` with a
``reconnect_url``, moves the subscriptions to the connection made there and closes the old one
once the new one is welcomed. EventSub keeps nothing for a socket that is gone: a notification
for a dropped session is never delivered.

Creating a subscription checks the token's scopes and condition like Twitch does
(``REQUIRED_SCOPES``): a missing scope is a 403, and the test can see what was refused in
``refused_subscriptions``.

Everything it receives is recorded (``requests``, ``chat_messages`` with receive timestamps read
from an injectable clock) so tests assert on what the bot really sent. Like Twitch, it echoes
the bot's own chat messages back over EventSub, with the bot's badges.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from aiohttp import WSMsgType, web

from engine.base.clock import Clock, MonotonicClock

__all__ = [
    "ANONYMOUS_GIFTER_ACCOUNT",
    "FakeChatUser",
    "FakeTwitch",
    "ReceivedChat",
    "ReceivedRequest",
    "badge",
    "fragments",
    "new_id",
]

CHAT_SCOPES = ["user:read:chat", "user:write:chat", "user:bot", "channel:bot"]
BROADCASTER_SCOPES = ["moderator:read:followers", "bits:read", "channel:read:redemptions"]
# Per subscription type: any one of these scopes, and the condition field that must name the
# token's own user (None: any user token will do).
REQUIRED_SCOPES: dict[str, tuple[tuple[str, ...], str | None]] = {
    "channel.chat.message": (("user:read:chat",), "user_id"),
    "channel.chat.notification": (("user:read:chat",), "user_id"),
    "channel.follow": (("moderator:read:followers",), "moderator_user_id"),
    "channel.cheer": (("bits:read",), "broadcaster_user_id"),
    "channel.channel_points_custom_reward_redemption.add": (
        ("channel:read:redemptions", "channel:manage:redemptions"),
        "broadcaster_user_id",
    ),
    "stream.online": ((), None),
    "stream.offline": ((), None),
}


@dataclass(frozen=True, slots=True)
class FakeChatUser:
    id: str
    login: str
    display_name: str


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    authorization: str | None


@dataclass(frozen=True, slots=True)
class ReceivedChat:
    """One POST /helix/chat/messages, stamped on arrival with the fake's clock."""

    received_at: float
    broadcaster_id: str
    sender_id: str
    message: str
    reply_parent_message_id: str | None
    is_sent: bool
    message_id: str


@dataclass(slots=True)
class _Token:
    access: str
    refresh: str
    user: FakeChatUser | None  # None: an app token
    scopes: list[str]
    expires_in: int = 14_400


@dataclass(slots=True)
class _Subscription:
    id: str
    type: str
    version: str
    condition: dict[str, str]
    session_id: str
    created_at: str = field(default_factory=lambda: _stamp())
    status: str = "enabled"  # "websocket_disconnected" once its socket is gone: it never delivers again


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _subscription_body(subscription: _Subscription) -> dict[str, Any]:
    return {
        "id": subscription.id,
        "status": subscription.status,
        "type": subscription.type,
        "version": subscription.version,
        "condition": subscription.condition,
        "created_at": subscription.created_at,
        "cost": 0,
        "transport": {
            "method": "websocket",
            "session_id": subscription.session_id,
            "connected_at": subscription.created_at,
        },
    }


def _error(status: int, message: str) -> web.Response:
    body = {"error": HTTPStatus(status).phrase, "status": status, "message": message}
    return web.json_response(body, status=status)


# -- stream events --------------------------------------------------------------------------------

# The account some senders name as the gifter of an anonymous gift sub (id as Twitch has it).
ANONYMOUS_GIFTER_ACCOUNT = FakeChatUser("274598607", "ananonymousgifter", "AnAnonymousGifter")


def new_id() -> str:
    """An id as Twitch writes message, event and subscription ids: a dashed UUID."""
    return str(uuid.uuid4())


def _user_fields(prefix: str, user: FakeChatUser | None, *, empty: str | None = None) -> dict[str, str | None]:
    """``prefix_id/_login/_name``; an anonymous user's are null (or ``empty``: twitch-cli sends "")."""
    if user is None:
        return {f"{prefix}_id": empty, f"{prefix}_login": empty, f"{prefix}_name": empty}
    return {f"{prefix}_id": user.id, f"{prefix}_login": user.login, f"{prefix}_name": user.display_name}


def fragments(text: str) -> list[dict[str, Any]]:
    """``message.fragments`` as EventSub splits a text: cheermotes (``Cheer100``), mentions
    (``@name``) and the plain text between them, spaces included."""
    parts: list[dict[str, Any]] = []
    for index, word in enumerate(text.split(" ") if text else []):
        lead = " " if index else ""
        special = _special_fragment(word)
        plain = lead + word if special is None else lead
        if plain and parts and parts[-1]["type"] == "text":
            parts[-1]["text"] += plain
        elif plain:
            parts.append(_fragment("text", plain))
        if special is not None:
            parts.append(special)
    return parts


def _fragment(kind: str, text: str, **detail: Any) -> dict[str, Any]:
    return {"type": kind, "text": text, "cheermote": None, "emote": None, "mention": None, **detail}


def _special_fragment(word: str) -> dict[str, Any] | None:
    cheer = re.fullmatch(r"[Cc]heer(\d+)", word)
    if cheer is not None:
        bits = int(cheer.group(1))
        tier = max(t for t in (1, 100, 1000, 5000, 10000) if t <= max(bits, 1))
        return _fragment("cheermote", word, cheermote={"prefix": "cheer", "bits": bits, "tier": tier})
    if word.startswith("@") and len(word) > 1:
        mention = {"user_id": "0", "user_login": word[1:].lower(), "user_name": word[1:]}
        return _fragment("mention", word, mention=mention)
    return None


NOTICE_FIELDS = [
    "sub",
    "resub",
    "sub_gift",
    "community_sub_gift",
    "gift_paid_upgrade",
    "prime_paid_upgrade",
    "raid",
    "unraid",
    "pay_it_forward",
    "announcement",
    "bits_badge_tier",
    "charity_donation",
    "modiversary",
    "watch_streak",
    "shared_chat_sub",
    "shared_chat_resub",
    "shared_chat_sub_gift",
    "shared_chat_community_sub_gift",
    "shared_chat_gift_paid_upgrade",
    "shared_chat_prime_paid_upgrade",
    "shared_chat_raid",
    "shared_chat_pay_it_forward",
    "shared_chat_announcement",
    "shared_chat_modiversary",
]
_SOURCE_FIELDS = [
    "source_broadcaster_user_id",
    "source_broadcaster_user_login",
    "source_broadcaster_user_name",
    "source_message_id",
    "source_badges",
    "is_source_only",
]


class StreamEvents:
    """The stream-event side of :class:`FakeTwitch` (mixed in below): one method per event.

    Every envelope sent is kept in ``delivered``; :meth:`redeliver` sends one again unchanged,
    as EventSub's at-least-once delivery does (same ``metadata.message_id``).
    """

    users: dict[str, FakeChatUser]
    subscriptions: dict[str, _Subscription]
    live: set[str]
    delivered: list[dict[str, Any]]
    _sockets: dict[str, web.WebSocketResponse]

    async def notify(
        self, kind: str, broadcaster_id: str, event: dict[str, Any], *, message_id: str | None = None
    ) -> int:
        """Deliver one notification to every enabled subscription of ``kind`` on that channel; how many got it."""
        delivered = 0
        for subscription in self._subscribed_to(kind, broadcaster_id):
            envelope = {
                "metadata": {
                    "message_id": message_id or new_id(),
                    "message_type": "notification",
                    "message_timestamp": _stamp(),
                    "subscription_type": kind,
                    "subscription_version": subscription.version,
                },
                "payload": {"subscription": _subscription_body(subscription), "event": event},
            }
            delivered += await self._send_envelope(subscription, envelope)
        return delivered

    async def redeliver(self, envelope: dict[str, Any]) -> int:
        """Send an envelope from ``delivered`` again, unchanged, to its subscription."""
        subscription = self.subscriptions[envelope["payload"]["subscription"]["id"]]
        return await self._send_envelope(subscription, envelope)

    def _subscribed_to(self, kind: str, broadcaster_id: str) -> list[_Subscription]:
        return [
            s
            for s in self.subscriptions.values()
            if s.type == kind and s.status == "enabled" and s.condition.get("broadcaster_user_id") == broadcaster_id
        ]

    async def _send_envelope(self, subscription: _Subscription, envelope: dict[str, Any]) -> int:
        socket = self._sockets.get(subscription.session_id)
        if socket is None or socket.closed:
            return 0
        await socket.send_str(json.dumps(envelope))
        self.delivered.append(envelope)
        return 1

    async def revoke(self, kind: str, broadcaster_id: str, status: str) -> int:
        """End every ``kind`` subscription on the channel with a ``revocation`` message, as Twitch does
        (``authorization_revoked``, ``user_removed``, ``version_removed``); how many were revoked."""
        revoked = 0
        for subscription in self._subscribed_to(kind, broadcaster_id):
            subscription.status = status
            envelope = {
                "metadata": {
                    "message_id": new_id(),
                    "message_type": "revocation",
                    "message_timestamp": _stamp(),
                    "subscription_type": kind,
                    "subscription_version": subscription.version,
                },
                "payload": {"subscription": _subscription_body(subscription)},
            }
            revoked += await self._send_envelope(subscription, envelope)
        return revoked

    def notice_body(
        self,
        broadcaster_id: str,
        chatter: FakeChatUser | None,
        notice: str,
        data: dict[str, Any] | None,
        *,
        text: str = "",
        notice_id: str | None = None,
        source: FakeChatUser | None = None,
    ) -> dict[str, Any]:
        """A ``channel.chat.notification`` event; ``chatter=None`` is an anonymous one (null fields),
        ``source`` the channel a shared-chat notice comes from."""
        who = chatter.display_name if chatter is not None else "An anonymous user"
        body: dict[str, Any] = {
            **_user_fields("broadcaster_user", self.users[broadcaster_id]),
            **_user_fields("chatter_user", chatter),
            "chatter_is_anonymous": chatter is None,
            "color": "",
            "badges": [],
            "system_message": f"{who} {notice.replace('_', ' ')}",
            "message_id": notice_id or new_id(),
            "message": {"text": text, "fragments": fragments(text)},
            "notice_type": notice,
            **{field: None for field in NOTICE_FIELDS},
            **{field: None for field in _SOURCE_FIELDS},
        }
        if source is not None:
            body |= {**_user_fields("source_broadcaster_user", source), "source_message_id": new_id()}
            body |= {"source_badges": [], "is_source_only": False}
        body[notice] = data
        return body

    async def notice(
        self, broadcaster_id: str, chatter: FakeChatUser | None, notice: str, data: Any, **extra: Any
    ) -> int:
        """Any chat notice (``pay_it_forward``, ``announcement``, ...) with its details ``data``."""
        body = self.notice_body(broadcaster_id, chatter, notice, data, **extra)
        return await self.notify("channel.chat.notification", broadcaster_id, body)

    async def raid(
        self, broadcaster_id: str, raider: FakeChatUser, viewers: int, *, notice_id: str | None = None
    ) -> str:
        """A raid notice. Returns the notice id."""
        raid = {**_user_fields("user", raider), "viewer_count": viewers, "profile_image_url": ""}
        notice = self.notice_body(broadcaster_id, raider, "raid", raid, notice_id=notice_id)
        await self.notify("channel.chat.notification", broadcaster_id, notice)
        return str(notice["message_id"])

    async def sub(self, broadcaster_id: str, viewer: FakeChatUser, tier: str = "1000", *, prime: bool = False) -> int:
        """A new sub; a Prime sub is tier 1000 with ``is_prime``."""
        data = {"sub_tier": "1000" if prime else tier, "is_prime": prime, "duration_months": 1}
        return await self.notice(broadcaster_id, viewer, "sub", data)

    async def resub(
        self, broadcaster_id: str, viewer: FakeChatUser, months: int, text: str, *, prime: bool = False
    ) -> int:
        data = {
            "cumulative_months": months, "duration_months": 1, "streak_months": None, "sub_tier": "1000",
            "is_prime": prime, "is_gift": False, "gifter_is_anonymous": None, "gifter_user_id": None,
            "gifter_user_name": None, "gifter_user_login": None,
        }  # fmt: skip
        return await self.notice(broadcaster_id, viewer, "resub", data, text=text)

    async def gift(
        self, broadcaster_id: str, gifter: FakeChatUser | None, recipient: FakeChatUser, *, gifter_total: int = 1
    ) -> int:
        """One gift sub outside a bomb; ``gifter=None`` an anonymous one (no ``cumulative_total`` then)."""
        data = self._gift_data(recipient, None, gifter_total if gifter is not None else None)
        return await self.notice(broadcaster_id, gifter, "sub_gift", data)

    async def community_gift(
        self,
        broadcaster_id: str,
        gifter: FakeChatUser | None,
        recipients: list[FakeChatUser],
        *,
        gifter_total: int | None = None,
    ) -> str:
        """A gift bomb as Twitch sends it: one ``community_sub_gift``, then one ``sub_gift`` per recipient.

        ``gifter=None`` is an anonymous bomb; ``gifter_total`` the gifter's subs gifted in the channel
        so far (``cumulative_total``; Twitch leaves it null for anonymous gifters).
        """
        gift_id = new_id()
        total = None if gifter is None else (gifter_total or len(recipients))
        bomb = {"id": gift_id, "total": len(recipients), "sub_tier": "1000", "cumulative_total": total}
        await self.notice(broadcaster_id, gifter, "community_sub_gift", bomb)
        for recipient in recipients:
            await self.notice(broadcaster_id, gifter, "sub_gift", self._gift_data(recipient, gift_id, total))
        return gift_id

    @staticmethod
    def _gift_data(recipient: FakeChatUser, bomb_id: str | None, total: int | None) -> dict[str, Any]:
        return {
            "duration_months": 1, "cumulative_total": total, "sub_tier": "1000", "community_gift_id": bomb_id,
            **_user_fields("recipient_user", recipient),
        }  # fmt: skip

    async def follow(self, broadcaster_id: str, follower: FakeChatUser) -> int:
        event = {
            **_user_fields("broadcaster_user", self.users[broadcaster_id]),
            **_user_fields("user", follower),
            "followed_at": _stamp(),
        }
        return await self.notify("channel.follow", broadcaster_id, event)

    async def cheer(
        self,
        broadcaster_id: str,
        cheerer: FakeChatUser | None,
        bits: int,
        message: str = "",
        *,
        empty_strings: bool = False,
    ) -> int:
        """A cheer; ``cheerer=None`` an anonymous one (null user fields, or "" as twitch-cli sends)."""
        event = {
            **_user_fields("broadcaster_user", self.users[broadcaster_id]),
            **_user_fields("user", cheerer, empty="" if empty_strings else None),
            "is_anonymous": cheerer is None,
            "message": message or f"Cheer{bits}",
            "bits": bits,
        }
        return await self.notify("channel.cheer", broadcaster_id, event)

    async def redemption(self, broadcaster_id: str, viewer: FakeChatUser, reward: str, text: str) -> int:
        event = {
            "id": new_id(),
            **_user_fields("broadcaster_user", self.users[broadcaster_id]),
            **_user_fields("user", viewer),
            "user_input": text,
            "status": "unfulfilled",
            "reward": {"id": new_id(), "title": reward, "cost": 500, "prompt": ""},
            "redeemed_at": _stamp(),
        }
        return await self.notify("channel.channel_points_custom_reward_redemption.add", broadcaster_id, event)

    async def stream_online(self, broadcaster_id: str) -> int:
        self.live_now(broadcaster_id, True)
        event = {
            **_user_fields("broadcaster_user", self.users[broadcaster_id]),
            "id": self._stream_id(broadcaster_id),
            "type": "live",
            "started_at": _stamp(),
        }
        return await self.notify("stream.online", broadcaster_id, event)

    async def stream_offline(self, broadcaster_id: str, *, with_id: bool = True) -> int:
        """The stream ended; ``with_id=False`` as before 2026 and as twitch-cli sends it (no ``id``)."""
        self.live_now(broadcaster_id, False)
        event: dict[str, Any] = dict(_user_fields("broadcaster_user", self.users[broadcaster_id]))
        if with_id:
            event["id"] = self._stream_id(broadcaster_id)
        return await self.notify("stream.offline", broadcaster_id, event)

    def _stream_id(self, broadcaster_id: str) -> str:
        return f"stream-{broadcaster_id}"  # as GET /helix/streams names it

    def live_now(self, broadcaster_id: str, live: bool) -> None:
        (self.live.add if live else self.live.discard)(broadcaster_id)


class FakeTwitch(StreamEvents):
    """Start with ``await fake.start()``; ``fake.helix_url``, ``fake.id_url``, ``fake.ws_url``."""

    def __init__(
        self,
        *,
        client_id: str = "fake-client-id",
        client_secret: str = "fake-client-secret",
        bot: FakeChatUser = FakeChatUser("1000", "costar_bot", "Costar_Bot"),
        clock: Clock | None = None,
        keepalive_s: float = 5.0,
        send_limit: int | None = None,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.bot = bot
        self.clock: Clock = clock or MonotonicClock()
        self.keepalive_s = keepalive_s
        self.send_limit = send_limit  # when set, sends past it in 30 s are dropped like Twitch would
        self.users: dict[str, FakeChatUser] = {bot.id: bot}
        self.bot_badges: dict[str, list[dict[str, str]]] = {}  # broadcaster id -> the bot's badges there
        self.requests: list[ReceivedRequest] = []
        self.chat_messages: list[ReceivedChat] = []
        self.hung_sends: list[str] = []
        self._closing = asyncio.Event()
        self.subscriptions: dict[str, _Subscription] = {}
        self.refused_subscriptions: list[tuple[str, str]] = []  # (type, why)
        self.live: set[str] = set()  # broadcaster ids whose stream is live for GET /helix/streams
        self.delivered: list[dict[str, Any]] = []  # every EventSub notification and revocation sent
        self.device_user: FakeChatUser | None = None  # who approves the device code (default: the bot)
        self.device_scopes: list[str] = list(CHAT_SCOPES)
        self.tokens: dict[str, _Token] = {}
        self.device_polls_before_grant = 1
        self.hang_sends = 0  # the next this many Send Chat Message calls never get an answer
        self._device_polls = 0
        self._sockets: dict[str, web.WebSocketResponse] = {}
        self.welcomes = 0  # EventSub connections welcomed so far
        self._subscribed = asyncio.Event()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._keepalive_tasks: set[asyncio.Task[Any]] = set()
        self.port = 0

    # -- set-up -----------------------------------------------------------------------------

    def add_user(self, user_id: str, login: str, display_name: str | None = None) -> FakeChatUser:
        user = FakeChatUser(user_id, login, display_name or login)
        self.users[user_id] = user
        return user

    def issue_user_token(
        self, user: FakeChatUser | None = None, *, expires_in: int = 14_400, scopes: list[str] | None = None
    ) -> tuple[str, str]:
        """A token pair as if the user had authorised the app; returns (access, refresh)."""
        granted = list(CHAT_SCOPES if scopes is None else scopes)
        token = _Token(f"user-{uuid.uuid4().hex}", f"refresh-{uuid.uuid4().hex}", user or self.bot, granted, expires_in)
        self.tokens[token.access] = token
        return token.access, token.refresh

    async def start(self) -> FakeTwitch:
        app = web.Application()
        app.router.add_post("/oauth2/token", self._oauth_token)
        app.router.add_post("/oauth2/device", self._oauth_device)
        app.router.add_get("/oauth2/validate", self._oauth_validate)
        app.router.add_get("/helix/users", self._users)
        app.router.add_post("/helix/eventsub/subscriptions", self._create_subscription)
        app.router.add_get("/helix/eventsub/subscriptions", self._list_subscriptions)
        app.router.add_post("/helix/chat/messages", self._send_chat)
        app.router.add_get("/helix/streams", self._streams)
        app.router.add_get("/ws", self._websocket)
        app.middlewares.append(self._record)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        self._closing.set()
        for task in list(self._keepalive_tasks):
            task.cancel()
        for socket in list(self._sockets.values()):
            with contextlib.suppress(Exception):
                await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def helix_url(self) -> str:
        return f"{self.base_url}/helix/"

    @property
    def id_url(self) -> str:
        return f"{self.base_url}/"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def wait_subscribed(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._subscribed.wait(), timeout)

    async def drop_eventsub(self) -> None:
        """Cut every EventSub socket as a failing edge server would (not a clean 4xxx close)."""
        for socket in list(self._sockets.values()):
            await socket.close(code=1011, message=b"internal server error")

    async def ask_to_reconnect(self) -> None:
        """Send ``session_reconnect`` on every socket, as Twitch does before an edge server restarts."""
        for session_id, socket in list(self._sockets.items()):
            session = {
                "id": session_id,
                "status": "reconnecting",
                "keepalive_timeout_seconds": None,
                "reconnect_url": f"{self.ws_url}?reconnect_from={session_id}",
                "connected_at": _stamp(),
                "recovery_url": None,
            }
            await socket.send_json(self._envelope("session_reconnect", {"session": session}))

    def chat_subscriptions(self, broadcaster_id: str) -> list[_Subscription]:
        """The live ``channel.chat.message`` subscriptions for a channel (on a connected socket)."""
        return [
            s
            for s in self.subscriptions.values()
            if s.type == "channel.chat.message"
            and s.condition.get("broadcaster_user_id") == broadcaster_id
            and s.status == "enabled"
        ]

    # -- recording and auth -----------------------------------------------------------------

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body and request.content_type == "application/json":
            body = await request.json()
        self.requests.append(
            ReceivedRequest(
                request.method, request.path, dict(request.query), body, request.headers.get("Authorization")
            )
        )
        return await handler(request)

    def _bearer(self, request: web.Request) -> _Token | None:
        header = request.headers.get("Authorization", "")
        if request.headers.get("Client-Id") != self.client_id:
            return None
        return self.tokens.get(header.removeprefix("Bearer ").removeprefix("OAuth "))

    # -- the id service ---------------------------------------------------------------------

    async def _oauth_token(self, request: web.Request) -> web.Response:
        grant = request.query.get("grant_type", "")
        if request.query.get("client_id") != self.client_id:
            return _error(400, "invalid client")
        if grant == "client_credentials":
            if request.query.get("client_secret") != self.client_secret:
                return _error(403, "invalid client secret")
            token = _Token(f"app-{uuid.uuid4().hex}", "", None, [])
            self.tokens[token.access] = token
            return web.json_response({"access_token": token.access, "expires_in": 5_000_000, "token_type": "bearer"})
        if grant == "refresh_token":
            return self._refresh(request.query.get("refresh_token", ""))
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            self._device_polls += 1
            if self._device_polls <= self.device_polls_before_grant:
                return _error(400, "authorization_pending")
            access, _refresh = self.issue_user_token(self.device_user, scopes=self.device_scopes)
            return self._token_body(self.tokens[access])
        return _error(400, f"unsupported grant {grant!r}")

    def _refresh(self, refresh: str) -> web.Response:
        old = next((t for t in self.tokens.values() if t.refresh == refresh), None)
        if old is None:
            return _error(400, "Invalid refresh token")
        del self.tokens[old.access]
        access, _ = self.issue_user_token(old.user, scopes=old.scopes)
        self.tokens[access].refresh = refresh
        return self._token_body(self.tokens[access])

    @staticmethod
    def _token_body(token: _Token) -> web.Response:
        return web.json_response(
            {
                "access_token": token.access,
                "refresh_token": token.refresh,
                "expires_in": token.expires_in,
                "scope": token.scopes,
                "token_type": "bearer",
            }
        )

    async def _oauth_device(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "device_code": "fake-device-code",
                "expires_in": 1800,
                "interval": 1,
                "user_code": "ABCD-EFGH",
                "verification_uri": f"{self.base_url}/activate?device-code=ABCD-EFGH",
            }
        )

    async def _oauth_validate(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        token = self.tokens.get(header.removeprefix("OAuth ").removeprefix("Bearer "))
        if token is None:
            return _error(401, "invalid access token")
        body: dict[str, Any] = {"client_id": self.client_id, "scopes": token.scopes, "expires_in": token.expires_in}
        if token.user is not None:
            body |= {"login": token.user.login, "user_id": token.user.id}
        return web.json_response(body)

    # -- Helix ------------------------------------------------------------------------------

    async def _users(self, request: web.Request) -> web.Response:
        if self._bearer(request) is None:
            return _error(401, "Invalid OAuth token")
        ids = set(request.query.getall("id", []))
        logins = {login.lower() for login in request.query.getall("login", [])}
        found = [u for u in self.users.values() if u.id in ids or u.login in logins]
        return web.json_response({"data": [self._user_body(u) for u in found]})

    @staticmethod
    def _user_body(user: FakeChatUser) -> dict[str, Any]:
        return {
            "id": user.id,
            "login": user.login,
            "display_name": user.display_name,
            "type": "",
            "broadcaster_type": "",
            "description": "",
            "profile_image_url": "",
            "offline_image_url": "",
            "view_count": 0,
            "created_at": "2020-01-01T00:00:00Z",
        }

    async def _create_subscription(self, request: web.Request) -> web.Response:
        token = self._bearer(request)
        if token is None or token.user is None:
            return _error(401, "Invalid OAuth token")
        body = await request.json()
        session_id = body["transport"].get("session_id", "")
        if session_id not in self._sockets:
            return _error(400, "websocket transport session does not exist or has already disconnected")
        refusal = self._refusal(body["type"], body["condition"], token)
        if refusal is not None:
            self.refused_subscriptions.append((body["type"], refusal))
            return _error(403, refusal)
        subscription = _Subscription(new_id(), body["type"], body["version"], body["condition"], session_id)
        self.subscriptions[subscription.id] = subscription
        self._subscribed.set()
        return web.json_response(
            {
                "data": [self._subscription_body(subscription)],
                "total": len(self.subscriptions),
                "total_cost": 0,
                "max_total_cost": 10,
            },
            status=202,
        )

    @staticmethod
    def _refusal(kind: str, condition: dict[str, str], token: _Token) -> str | None:
        scopes, own_field = REQUIRED_SCOPES.get(kind, ((), None))
        if scopes and not set(scopes) & set(token.scopes):
            return "subscription missing proper authorization"
        if own_field is not None and token.user is not None and condition.get(own_field) != token.user.id:
            return f"{own_field} must match the user in the access token"
        return None

    async def _streams(self, request: web.Request) -> web.Response:
        if self._bearer(request) is None:
            return _error(401, "Invalid OAuth token")
        wanted = set(request.query.getall("user_id", []))
        data = [self._stream_body(self.users[user_id]) for user_id in sorted(self.live & wanted)]
        return web.json_response({"data": data, "pagination": {}})

    @staticmethod
    def _stream_body(user: FakeChatUser) -> dict[str, Any]:
        return {
            "id": f"stream-{user.id}",
            "user_id": user.id,
            "user_login": user.login,
            "user_name": user.display_name,
            "game_id": "",
            "game_name": "",
            "type": "live",
            "title": "a fake stream",
            "viewer_count": 1,
            "started_at": "2026-01-01T00:00:00Z",
            "language": "en",
            "thumbnail_url": "",
            "tags": [],
            "is_mature": False,
        }

    async def _list_subscriptions(self, request: web.Request) -> web.Response:
        if self._bearer(request) is None:
            return _error(401, "Invalid OAuth token")
        data = [self._subscription_body(s) for s in self.subscriptions.values()]
        return web.json_response(
            {"data": data, "total": len(data), "total_cost": 0, "max_total_cost": 10, "pagination": {}}
        )

    @staticmethod
    def _subscription_body(subscription: _Subscription) -> dict[str, Any]:
        return _subscription_body(subscription)

    async def _send_chat(self, request: web.Request) -> web.Response:
        received_at = self.clock.now()
        token = self._bearer(request)
        if token is None:
            return _error(401, "Invalid OAuth token")
        body = await request.json()
        sender_id = str(body.get("sender_id", ""))
        if token.user is not None and token.user.id != sender_id:
            return _error(403, "The sender must match the user ID in the access token.")
        if "user:write:chat" not in token.scopes and token.user is not None:
            return _error(401, "Missing scope: user:write:chat")
        message = str(body.get("message", ""))
        if self.hang_sends > 0:
            self.hang_sends -= 1
            self.hung_sends.append(message)
            await self._closing.wait()  # a server that took the request and went silent
        if len(message) > 500:
            return _error(400, "The message is too long.")
        dropped = self._rate_limited(received_at)
        record = ReceivedChat(
            received_at,
            str(body["broadcaster_id"]),
            sender_id,
            message,
            body.get("reply_parent_message_id"),
            not dropped,
            new_id(),
        )
        self.chat_messages.append(record)
        drop_reason = {
            "code": "msg_ratelimit",
            "message": "Your message was not sent because you are sending messages too quickly.",
        }
        if not dropped:
            asyncio.get_running_loop().call_soon(self._echo, record)
        return web.json_response(
            {
                "data": [
                    {
                        "message_id": record.message_id if not dropped else "",
                        "is_sent": not dropped,
                        "drop_reason": drop_reason if dropped else None,
                    }
                ]
            }
        )

    def _rate_limited(self, now: float) -> bool:
        if self.send_limit is None:
            return False
        recent = [m for m in self.chat_messages if m.is_sent and m.received_at > now - 30.0]
        return len(recent) >= self.send_limit

    def _echo(self, sent: ReceivedChat) -> None:
        sender = self.users.get(sent.sender_id, self.bot)
        badges = self.bot_badges.get(sent.broadcaster_id, [])
        task = asyncio.ensure_future(
            self.chat(sent.broadcaster_id, sender, sent.message, badges=badges, message_id=sent.message_id)
        )
        self._keepalive_tasks.add(task)
        task.add_done_callback(self._keepalive_tasks.discard)

    # -- EventSub websocket -----------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        session_id = f"session-{next(self._ids)}"
        self._sockets[session_id] = socket
        moved_from = request.query.get("reconnect_from")
        if moved_from is not None:  # a reconnect URL: the old session's subscriptions move here
            for subscription in self.subscriptions.values():
                if subscription.session_id == moved_from:
                    subscription.session_id = session_id
        await socket.send_json(
            self._envelope(
                "session_welcome",
                {
                    "session": {
                        "id": session_id,
                        "status": "connected",
                        "connected_at": _stamp(),
                        "keepalive_timeout_seconds": int(request.query.get("keepalive_timeout_seconds", 10)),
                        "reconnect_url": None,
                        "recovery_url": None,
                    }
                },
            )
        )
        self.welcomes += 1
        if moved_from is not None and (old := self._sockets.get(moved_from)) is not None:
            await old.close()  # Twitch closes the old connection once the new one is welcomed
        keepalive = asyncio.create_task(self._keep_alive(socket))
        self._keepalive_tasks.add(keepalive)
        keepalive.add_done_callback(self._keepalive_tasks.discard)
        try:
            async for message in socket:
                if message.type == WSMsgType.TEXT:  # Twitch closes with 4001 on any client message
                    await socket.close(code=4001)
        finally:
            keepalive.cancel()
            self._sockets.pop(session_id, None)
            # A socket gone for good disables its subscriptions (they were not carried elsewhere).
            for subscription in self.subscriptions.values():
                if subscription.session_id == session_id:
                    subscription.status = "websocket_disconnected"
        return socket

    async def _keep_alive(self, socket: web.WebSocketResponse) -> None:
        while not socket.closed:
            await asyncio.sleep(self.keepalive_s)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await socket.send_json(self._envelope("session_keepalive", {}))

    def _envelope(self, message_type: str, payload: dict[str, Any], **metadata: str) -> dict[str, Any]:
        return {
            "metadata": {
                "message_id": new_id(),
                "message_type": message_type,
                "message_timestamp": _stamp(),
                **metadata,
            },
            "payload": payload,
        }

    async def chat(
        self,
        broadcaster_id: str,
        chatter: FakeChatUser,
        text: str,
        *,
        badges: list[dict[str, str]] | None = None,
        message_id: str | None = None,
        reply_to: tuple[str, str, FakeChatUser] | None = None,
    ) -> str:
        """Deliver a ``channel.chat.message`` notification to every matching subscription.

        ``reply_to`` is (parent message id, parent text, parent author). Returns the message id.
        """
        message_id = message_id or new_id()
        event = self._chat_event(broadcaster_id, chatter, text, badges or [], message_id, reply_to)
        for subscription in list(self.subscriptions.values()):
            if subscription.type != "channel.chat.message" or subscription.status != "enabled":
                continue
            if subscription.condition.get("broadcaster_user_id") != broadcaster_id:
                continue
            socket = self._sockets.get(subscription.session_id)
            if socket is None or socket.closed:
                continue
            envelope = self._envelope(
                "notification",
                {"subscription": self._subscription_body(subscription), "event": event},
                subscription_type="channel.chat.message",
                subscription_version="1",
            )
            await socket.send_str(json.dumps(envelope))
        return message_id

    def _chat_event(
        self,
        broadcaster_id: str,
        chatter: FakeChatUser,
        text: str,
        badges: list[dict[str, str]],
        message_id: str,
        reply_to: tuple[str, str, FakeChatUser] | None,
    ) -> dict[str, Any]:
        broadcaster = self.users[broadcaster_id]
        reply = None
        if reply_to is not None:
            parent_id, parent_text, parent = reply_to
            reply = {
                "parent_message_id": parent_id,
                "parent_message_body": parent_text,
                "parent_user_id": parent.id,
                "parent_user_login": parent.login,
                "parent_user_name": parent.display_name,
                "thread_message_id": parent_id,
                "thread_user_id": parent.id,
                "thread_user_login": parent.login,
                "thread_user_name": parent.display_name,
            }
        return {
            "broadcaster_user_id": broadcaster.id,
            "broadcaster_user_login": broadcaster.login,
            "broadcaster_user_name": broadcaster.display_name,
            "chatter_user_id": chatter.id,
            "chatter_user_login": chatter.login,
            "chatter_user_name": chatter.display_name,
            "message_id": message_id,
            "message": {"text": text, "fragments": fragments(text)},
            "color": "#1E90FF",
            "badges": badges,
            "message_type": "text",
            "cheer": None,
            "reply": reply,
            "channel_points_custom_reward_id": None,
            "channel_points_animation_id": None,
            "source_broadcaster_user_id": None,
            "source_broadcaster_user_login": None,
            "source_broadcaster_user_name": None,
            "source_message_id": None,
            "source_badges": None,
            "is_source_only": None,
        }


def badge(set_id: str) -> dict[str, str]:
    """A chat badge as EventSub sends it: ``badge("moderator")``."""
    return {"set_id": set_id, "id": "1", "info": ""}
