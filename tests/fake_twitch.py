"""A local fake of the Twitch APIs the bot touches, for driving the real twitchio client in tests.

One aiohttp server on 127.0.0.1 serves three things, reached by pointing twitchio's own seams at
it (``twitchio.http.Route.BASE`` / ``ID_BASE`` and ``twitchio.eventsub.websockets.WSS``):

- the id service: ``POST /oauth2/token`` (client credentials, refresh, device code),
  ``POST /oauth2/device``, ``GET /oauth2/validate``;
- Helix: ``GET /helix/users``, ``POST``/``GET /helix/eventsub/subscriptions``,
  ``POST /helix/chat/messages`` (500 characters, ``is_sent``/``drop_reason`` like the real one);
- the EventSub websocket ``/ws``: ``session_welcome`` on connect, ``session_keepalive`` on a
  timer, ``channel.chat.message`` notifications sent by the test with :meth:`FakeTwitch.chat`.

Everything it receives is recorded (``requests``, ``chat_messages`` with receive timestamps read
from an injectable clock) so tests assert on what the bot really sent. Like Twitch, it echoes
the bot's own chat messages back over EventSub, with the bot's badges.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from aiohttp import WSMsgType, web

from engine.flow.clock import Clock, MonotonicClock

__all__ = ["FakeChatUser", "FakeTwitch", "ReceivedChat", "ReceivedRequest", "badge"]

CHAT_SCOPES = ["user:read:chat", "user:write:chat", "user:bot", "channel:bot"]


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


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error(status: int, message: str) -> web.Response:
    body = {"error": HTTPStatus(status).phrase, "status": status, "message": message}
    return web.json_response(body, status=status)


class FakeTwitch:
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
        self.subscriptions: dict[str, _Subscription] = {}
        self.tokens: dict[str, _Token] = {}
        self.device_polls_before_grant = 1
        self._device_polls = 0
        self._sockets: dict[str, web.WebSocketResponse] = {}
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

    def issue_user_token(self, user: FakeChatUser | None = None, *, expires_in: int = 14_400) -> tuple[str, str]:
        """A token pair as if the user had authorised the app; returns (access, refresh)."""
        token = _Token(
            f"user-{uuid.uuid4().hex}", f"refresh-{uuid.uuid4().hex}", user or self.bot, list(CHAT_SCOPES), expires_in
        )
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
        app.router.add_get("/ws", self._websocket)
        app.middlewares.append(self._record)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
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
            access, _refresh = self.issue_user_token()
            return self._token_body(self.tokens[access])
        return _error(400, f"unsupported grant {grant!r}")

    def _refresh(self, refresh: str) -> web.Response:
        old = next((t for t in self.tokens.values() if t.refresh == refresh), None)
        if old is None:
            return _error(400, "Invalid refresh token")
        del self.tokens[old.access]
        access, _ = self.issue_user_token(old.user)
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
        if body["type"] == "channel.chat.message" and "user:read:chat" not in token.scopes:
            return _error(403, "subscription missing proper authorization")
        subscription = _Subscription(uuid.uuid4().hex, body["type"], body["version"], body["condition"], session_id)
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

    async def _list_subscriptions(self, request: web.Request) -> web.Response:
        if self._bearer(request) is None:
            return _error(401, "Invalid OAuth token")
        data = [self._subscription_body(s) for s in self.subscriptions.values()]
        return web.json_response(
            {"data": data, "total": len(data), "total_cost": 0, "max_total_cost": 10, "pagination": {}}
        )

    @staticmethod
    def _subscription_body(subscription: _Subscription) -> dict[str, Any]:
        return {
            "id": subscription.id,
            "status": "enabled",
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
            uuid.uuid4().hex,
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
        return socket

    async def _keep_alive(self, socket: web.WebSocketResponse) -> None:
        while not socket.closed:
            await asyncio.sleep(self.keepalive_s)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await socket.send_json(self._envelope("session_keepalive", {}))

    def _envelope(self, message_type: str, payload: dict[str, Any], **metadata: str) -> dict[str, Any]:
        return {
            "metadata": {
                "message_id": uuid.uuid4().hex,
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
        message_id = message_id or uuid.uuid4().hex
        event = self._chat_event(broadcaster_id, chatter, text, badges or [], message_id, reply_to)
        for subscription in list(self.subscriptions.values()):
            if subscription.type != "channel.chat.message":
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
            "message": {
                "text": text,
                "fragments": [{"type": "text", "text": text, "cheermote": None, "emote": None, "mention": None}],
            },
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
