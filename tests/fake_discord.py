"""A local fake Discord for driving the real discord.py client in tests.

One aiohttp server on 127.0.0.1 speaks both halves of Discord that a bot touches:

* the gateway websocket: HELLO, heartbeats (ACK), IDENTIFY -> READY + GUILD_CREATE, and whatever the
  test dispatches afterwards (MESSAGE_CREATE, INTERACTION_CREATE); :meth:`FakeDiscord.cut_gateway`
  drops the connection like a failing gateway (a resumable close code). Like Discord, the session
  keeps what was dispatched while no bot was connected: RESUME (op 6, session id and last sequence)
  replays every event after that sequence, then RESUMED; with ``invalidate_resumes`` set it answers
  INVALID_SESSION (op 9, not resumable) instead, and the bot must IDENTIFY again (what was
  dispatched in between is then gone, as on Discord);
* the REST routes discord.py calls: login (``/users/@me``, ``/oauth2/applications/@me``), the gateway
  URL, command sync, typing, create/edit/fetch/delete message, interaction callbacks and webhook
  follow-ups.

Every REST call is recorded (``requests``) with its JSON body, so tests assert on exactly what the bot
sent (``allowed_mentions`` included). Unknown routes are recorded too and answered 404, so a test can
see a route the fake does not model yet.

Use it as ``async with FakeDiscord() as discord_server:``; inside the block discord.py talks to the
fake instead of discord.com (``discord.http.Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY`` are
pointed at it -- a plain ``discord.Client`` goes straight to ``DEFAULT_GATEWAY``; only sharded
clients ask ``GET /gateway/bot``). Payload shapes follow discord.py 2.7's ``discord/types``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import discord
import yarl
from aiohttp import WSMsgType, web

__all__ = ["FakeChannel", "FakeDiscord", "FakeGuild", "FakeRole", "FakeUser", "RecordedRequest", "permission_bits"]

API_PREFIX = "/api/v10"
EPHEMERAL_FLAG = 1 << 6
_HEARTBEAT_INTERVAL_MS = 41_250
_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")
_ANY_ID = r"\d+"
_JSON_BODY: web.RequestKey[Any] = web.RequestKey("json_body", object)


def permission_bits(**flags: bool) -> int:
    """``permission_bits(manage_guild=True)`` -> the integer Discord sends for those permissions."""
    return discord.Permissions(**flags).value


def _option_value(value: str | int | FakeUser) -> dict[str, Any]:
    if isinstance(value, FakeUser):
        return {"type": 6, "value": str(value.id)}
    return {"type": 4 if isinstance(value, int) else 3, "value": value}


def _json(payload: Any, status: int = 200) -> web.Response:
    # discord.py parses a body only when Content-Type is exactly application/json (http.json_or_text),
    # so no "; charset=utf-8" suffix as aiohttp's json_response would add.
    return web.Response(body=json.dumps(payload).encode(), status=status, headers={"Content-Type": "application/json"})


def _timestamp() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str  # without the /api/v10 prefix, e.g. /channels/1/messages
    query: dict[str, str]
    json: Any


@dataclass(slots=True)
class FakeUser:
    id: int
    name: str
    bot: bool = False

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.name,
            "global_name": self.name,
            "discriminator": "0",
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
        }


@dataclass(slots=True)
class FakeRole:
    id: int
    name: str
    permissions: int = 0

    def payload(self, position: int) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": position,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": True,
            "flags": 0,
        }


@dataclass(slots=True)
class FakeChannel:
    id: int
    name: str

    def payload(self, guild_id: int, position: int) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "type": 0,  # GUILD_TEXT
            "guild_id": str(guild_id),
            "name": self.name,
            "position": position,
            "permission_overwrites": [],
            "nsfw": False,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
        }


@dataclass(slots=True)
class FakeGuild:
    """A guild whose ``@everyone`` role has the same id as the guild (as on Discord)."""

    id: int
    name: str
    owner_id: int
    roles: list[FakeRole] = field(default_factory=list)
    channels: list[FakeChannel] = field(default_factory=list)
    member_roles: dict[int, list[int]] = field(default_factory=dict)  # user id -> role ids

    def permissions_of(self, user_id: int) -> int:
        if user_id == self.owner_id:
            return discord.Permissions.all().value
        granted = 0
        for role in self.roles:
            if role.id == self.id or role.id in self.member_roles.get(user_id, []):
                granted |= role.permissions
        if granted & discord.Permissions(administrator=True).value:
            return discord.Permissions.all().value
        return granted

    def member_payload(self, user: FakeUser, *, with_user: bool = True) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "roles": [str(role_id) for role_id in self.member_roles.get(user.id, [])],
            "joined_at": "2024-01-01T00:00:00+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
            "nick": None,
        }
        if with_user:
            payload["user"] = user.payload()
        return payload

    def payload(self, members: list[FakeUser]) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "owner_id": str(self.owner_id),
            "unavailable": False,
            "large": False,
            "member_count": len(members),
            "features": [],
            "emojis": [],
            "stickers": [],
            "roles": [role.payload(position) for position, role in enumerate(self.roles)],
            "channels": [channel.payload(self.id, position) for position, channel in enumerate(self.channels)],
            "members": [self.member_payload(user) for user in members],
            "threads": [],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "joined_at": "2024-01-01T00:00:00+00:00",
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "system_channel_flags": 0,
        }


class FakeDiscord:
    """The fake platform. Attributes a test reads: ``requests``, ``messages_sent`` and friends."""

    def __init__(self) -> None:
        # Snowflakes from the current time, so discord.py's created_at reads "now".
        self._ids = itertools.count(discord.utils.time_snowflake(datetime.now(UTC)))
        self.application_id = self.new_id()
        self.bot_user = FakeUser(self.application_id, "costar-bot", bot=True)
        self.owner = FakeUser(self.new_id(), "owner")
        guild_id = self.new_id()
        self.moderator_role = FakeRole(self.new_id(), "Moderators", permission_bits(manage_guild=True))
        self.guild = FakeGuild(
            id=guild_id,
            name="Stream Server",
            owner_id=self.owner.id,
            roles=[
                FakeRole(
                    guild_id,
                    "@everyone",
                    permission_bits(view_channel=True, send_messages=True, use_application_commands=True),
                ),
                self.moderator_role,
            ],
            channels=[FakeChannel(self.new_id(), "general"), FakeChannel(self.new_id(), "off-topic")],
        )
        self.members: list[FakeUser] = [self.bot_user, self.owner]
        self.requests: list[RecordedRequest] = []
        self.unrouted: list[str] = []  # calls to routes the fake does not model (a test should see none)
        self.identify_payloads: list[dict[str, Any]] = []
        self.messages: dict[int, dict[str, Any]] = {}  # every message, by id, as Discord would store it
        self.synced_commands: list[dict[str, Any]] = []
        self.edit_delay_s = 0.0  # a slow Discord: each message edit takes this long to answer
        self.hang_sends = 0  # the next this many message creations are taken and never answered
        self.hung_sends: list[str] = []
        self._closing = asyncio.Event()
        self._changed = asyncio.Condition()
        self._socket: web.WebSocketResponse | None = None  # the bot's live session, once it identified/resumed
        self._sockets: set[web.WebSocketResponse] = set()
        self._sequence = itertools.count(1)
        self._session_id: str | None = None
        self._backlog: list[dict[str, Any]] = []  # this session's dispatches, for RESUME to replay
        self.resume_payloads: list[dict[str, Any]] = []
        self.invalidate_resumes = False  # answer RESUME with INVALID_SESSION (not resumable)
        self.refuse_token = False  # answer the login (GET /users/@me) 401, as Discord does a wrong token
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._saved: tuple[str, yarl.URL] | None = None

    # ---------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._point_discord_py_here()

    async def close(self) -> None:
        self._restore_discord_py()
        self._closing.set()
        for socket in list(self._sockets):
            if not socket.closed:
                await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/gateway"

    def _point_discord_py_here(self) -> None:
        gateway = discord.gateway.DiscordWebSocket
        self._saved = (discord.http.Route.BASE, gateway.DEFAULT_GATEWAY)
        discord.http.Route.BASE = self.base_url
        gateway.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)

    def _restore_discord_py(self) -> None:
        if self._saved is not None:
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = self._saved
            self._saved = None

    # ---------------------------------------------------------------- the world

    def new_id(self) -> int:
        return next(self._ids)

    def add_member(self, name: str, *, roles: tuple[FakeRole, ...] = (), bot: bool = False) -> FakeUser:
        user = FakeUser(self.new_id(), name, bot=bot)
        self.members.append(user)
        self.guild.member_roles[user.id] = [role.id for role in roles]
        return user

    def add_role(self, name: str, permissions: int = 0) -> FakeRole:
        role = FakeRole(self.new_id(), name, permissions)
        self.guild.roles.append(role)
        return role

    @property
    def general(self) -> FakeChannel:
        return self.guild.channels[0]

    # ---------------------------------------------------------------- recording and waiting

    @web.middleware
    async def _record(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        if request.path.startswith(API_PREFIX):
            body = await request.read()
            payload = json.loads(body) if body and request.content_type == "application/json" else None
            request[_JSON_BODY] = payload
        response = await handler(request)
        if request.path.startswith(API_PREFIX):
            # Recorded once answered, so a test woken by it also sees the fake's state updated.
            recorded = RecordedRequest(
                request.method, request.path[len(API_PREFIX) :], dict(request.query), request[_JSON_BODY]
            )
            self.requests.append(recorded)
        async with self._changed:
            self._changed.notify_all()
        return response

    def calls(self, method: str, pattern: str) -> list[RecordedRequest]:
        """Recorded REST calls whose path matches the regular expression ``pattern`` in full."""
        compiled = re.compile(pattern)
        return [r for r in self.requests if r.method == method and compiled.fullmatch(r.path)]

    async def wait_for_calls(
        self, method: str, pattern: str, count: int = 1, timeout: float = 10.0
    ) -> list[RecordedRequest]:
        """Wait until at least ``count`` matching calls arrived; return all of them."""

        await self.wait_until(lambda: len(self.calls(method, pattern)) >= count, timeout)
        return self.calls(method, pattern)

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``condition()`` holds; it is re-checked after every REST call and IDENTIFY."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(condition), timeout)

    async def wait_until_identified(self, connections: int = 1, timeout: float = 10.0) -> None:
        await self.wait_until(lambda: len(self.identify_payloads) >= connections, timeout)

    def sent_messages(self, channel_id: int | None = None) -> list[dict[str, Any]]:
        """Messages the bot created (REST bodies as sent), in order."""
        pattern = rf"/channels/{channel_id or _ANY_ID}/messages"
        return [call.json for call in self.calls("POST", pattern)]

    def message_edits(self, channel_id: int | None = None) -> list[dict[str, Any]]:
        pattern = rf"/channels/{channel_id or _ANY_ID}/messages/\d+"
        return [call.json for call in self.calls("PATCH", pattern)]

    def current_text(self, message_id: int) -> str:
        """What a viewer now sees in a message the bot sent (after all edits)."""
        return str(self.messages[message_id]["content"])

    def bot_messages(self, channel_id: int) -> list[dict[str, Any]]:
        """The bot's messages in a channel as they now read, oldest first."""
        return [
            message
            for message in self.messages.values()
            if message["channel_id"] == str(channel_id) and message["author"]["id"] == str(self.bot_user.id)
        ]

    # ---------------------------------------------------------------- gateway

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.add(socket)
        await socket.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": _HEARTBEAT_INTERVAL_MS}}))
        try:
            async for frame in socket:
                if frame.type != WSMsgType.TEXT:
                    continue
                await self._on_gateway_frame(socket, json.loads(frame.data))
        finally:
            self._sockets.discard(socket)
            if self._socket is socket:
                self._socket = None
        return socket

    async def cut_gateway(self, code: int = 4000) -> None:
        """Drop the bot's gateway connection (4000, "unknown error", lets the bot resume)."""
        if self._socket is not None:
            socket, self._socket = self._socket, None
            await socket.close(code=code)

    async def _on_gateway_frame(self, socket: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        op = frame.get("op")
        if op == 1:  # HEARTBEAT
            await socket.send_str(json.dumps({"op": 11}))
        elif op == 2:  # IDENTIFY: a new session; whatever the old one missed is gone
            self._backlog.clear()
            self._session_id = f"session-{len(self.identify_payloads)}"
            self._socket = socket
            await self._send_dispatch(socket, "READY", self._ready_payload())
            await self._send_dispatch(socket, "GUILD_CREATE", self.guild.payload(self.members))
            self.identify_payloads.append(frame["d"])
        elif op == 6:  # RESUME
            self.resume_payloads.append(frame["d"])
            await self._resume(socket, frame["d"])
        else:
            return
        async with self._changed:
            self._changed.notify_all()

    async def _resume(self, socket: web.WebSocketResponse, payload: dict[str, Any]) -> None:
        if self.invalidate_resumes or payload.get("session_id") != self._session_id:
            await socket.send_str(json.dumps({"op": 9, "d": False}))
            return
        last = payload.get("seq") or 0
        missed = [frame for frame in self._backlog if frame["s"] > last]
        index = 0
        while index < len(missed):  # events dispatched while replaying join the replay
            await socket.send_str(json.dumps(missed[index]))
            index += 1
            missed += [frame for frame in self._backlog if frame["s"] > missed[-1]["s"]]
        self._socket = socket
        await self._send_dispatch(socket, "RESUMED", {})

    def _ready_payload(self) -> dict[str, Any]:
        return {
            "v": 10,
            "user": self.bot_user.payload() | {"verified": True, "mfa_enabled": False, "flags": 0},
            "guilds": [{"id": str(self.guild.id), "unavailable": True}],
            "session_id": self._session_id,
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
        }

    async def _send_dispatch(self, socket: web.WebSocketResponse | None, event: str, data: dict[str, Any]) -> None:
        frame = {"op": 0, "t": event, "s": next(self._sequence), "d": data}
        self._backlog.append(frame)
        if socket is not None:
            await socket.send_str(json.dumps(frame))

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send an event to the bot; while it is disconnected, keep it for its RESUME."""
        if self._session_id is None:
            raise RuntimeError("no bot has connected to the fake gateway")
        await self._send_dispatch(self._socket, event, data)

    # ---------------------------------------------------------------- what viewers do

    async def post_message(
        self,
        author: FakeUser,
        content: str,
        *,
        channel: FakeChannel | None = None,
        reply_to: int | None = None,
    ) -> int:
        """A viewer writes in a guild channel; ``<@id>`` and ``<@&id>`` in ``content`` become mentions."""
        channel = channel or self.general
        message = self._message_payload(channel.id, author, content)
        message["member"] = self.guild.member_payload(author, with_user=False)
        message["mentions"] = [self._mentioned_user(int(user_id)) for user_id in _USER_MENTION.findall(content)]
        message["mention_roles"] = _ROLE_MENTION.findall(content)
        if reply_to is not None:
            message["type"] = 19  # REPLY
            message["message_reference"] = {
                "message_id": str(reply_to),
                "channel_id": str(channel.id),
                "guild_id": str(self.guild.id),
            }
            message["referenced_message"] = self.messages.get(reply_to)
        self.messages[int(message["id"])] = message
        await self.dispatch("MESSAGE_CREATE", message)
        return int(message["id"])

    async def member_joins(self, name: str) -> FakeUser:
        """Someone joins the server: GUILD_MEMBER_ADD, as sent with the Server Members intent."""
        user = self.add_member(name)
        payload = self.guild.member_payload(user) | {"guild_id": str(self.guild.id), "joined_at": _timestamp()}
        await self.dispatch("GUILD_MEMBER_ADD", payload)
        return user

    async def post_direct_message(self, author: FakeUser, content: str) -> int:
        channel_id = self.new_id()
        message = self._message_payload(channel_id, author, content, guild=False)
        self.messages[int(message["id"])] = message
        await self.dispatch("MESSAGE_CREATE", message)
        return int(message["id"])

    def _mentioned_user(self, user_id: int) -> dict[str, Any]:
        user = next(member for member in self.members if member.id == user_id)
        return user.payload() | {"member": self.guild.member_payload(user, with_user=False)}

    def _message_payload(
        self, channel_id: int, author: FakeUser, content: str, *, guild: bool = True
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": str(self.new_id()),
            "channel_id": str(channel_id),
            "author": author.payload(),
            "content": content,
            "timestamp": _timestamp(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "type": 0,
            "flags": 0,
        }
        if guild:
            payload["guild_id"] = str(self.guild.id)
        return payload

    async def run_slash_command(
        self,
        user: FakeUser,
        group: str,
        subcommand: str,
        options: Mapping[str, str | int | FakeUser] | None = None,
        *,
        channel: FakeChannel | None = None,
        autocomplete: str | None = None,
    ) -> int:
        """A member runs ``/group subcommand option:value`` (or types into ``autocomplete``'s box).

        Returns the interaction id; the bot's answer is ``interaction_response(id)``.
        """
        channel = channel or self.general
        command = self._synced_command(group)
        arguments = [
            # Option types as Discord sends them: 4 an integer, 3 a string, 6 a user (by id).
            {"name": name, **_option_value(value)} | ({"focused": True} if name == autocomplete else {})
            for name, value in (options or {}).items()
        ]
        data: dict[str, Any] = {
            "id": command["id"],
            "name": group,
            "type": 1,
            "options": [{"name": subcommand, "type": 1, "options": arguments}],
        }
        users = [value for value in (options or {}).values() if isinstance(value, FakeUser)]
        if users:  # Discord sends the users an interaction names alongside it
            data["resolved"] = {
                "users": {str(user.id): user.payload() for user in users},
                "members": {str(user.id): self.guild.member_payload(user, with_user=False) for user in users},
            }
        if command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        interaction_id = self.new_id()
        await self.dispatch(
            "INTERACTION_CREATE", self._interaction_payload(interaction_id, user, channel, data, autocomplete)
        )
        return interaction_id

    def _synced_command(self, name: str) -> dict[str, Any]:
        for command in reversed(self.synced_commands):
            if command["name"] == name:
                return command
        raise LookupError(
            f"the bot never synced a /{name} command (synced: {[c['name'] for c in self.synced_commands]})"
        )

    def _interaction_payload(
        self, interaction_id: int, user: FakeUser, channel: FakeChannel, data: dict[str, Any], autocomplete: str | None
    ) -> dict[str, Any]:
        member = self.guild.member_payload(user) | {"permissions": str(self.guild.permissions_of(user.id))}
        return {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": 4 if autocomplete else 2,  # APPLICATION_COMMAND_AUTOCOMPLETE / APPLICATION_COMMAND
            "data": data,
            "guild_id": str(self.guild.id),
            "channel_id": str(channel.id),
            "channel": channel.payload(self.guild.id, 0),
            "member": member,
            "token": f"token-{interaction_id}",
            "version": 1,
            "locale": "en-US",
            "guild_locale": "en-US",
            "app_permissions": str(discord.Permissions.text().value),
            "entitlements": [],
            "attachment_size_limit": 10 * 1024 * 1024,
            "authorizing_integration_owners": {"0": str(self.guild.id)},
            "context": 0,
        }

    async def interaction_response(self, interaction_id: int, timeout: float = 10.0) -> dict[str, Any]:
        """The callback body the bot sent for an interaction: ``{"type": 4, "data": {...}}``."""
        calls = await self.wait_for_calls("POST", rf"/interactions/{interaction_id}/[^/]+/callback", timeout=timeout)
        return calls[0].json

    # ---------------------------------------------------------------- REST

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = request.path[len(API_PREFIX) :]
        for method, pattern, handler in self._routes():
            match = re.fullmatch(pattern, path)
            if match and method == request.method:
                return await handler(request, *match.groups())
        self.unrouted.append(f"{request.method} {path}")
        return _json({"message": f"fake discord: no route {request.method} {path}", "code": 0}, status=404)

    def _routes(self) -> Iterator[tuple[str, str, Callable[..., Any]]]:
        yield "GET", r"/users/@me", self._get_me
        yield "GET", r"/oauth2/applications/@me", self._get_application
        yield "GET", r"/gateway(?:/bot)?", self._get_gateway
        yield "PUT", r"/applications/(\d+)/commands", self._put_global_commands
        yield "PUT", r"/applications/(\d+)/guilds/(\d+)/commands", self._put_guild_commands
        yield "POST", r"/channels/(\d+)/typing", self._typing
        yield "POST", r"/channels/(\d+)/messages", self._create_message
        yield "PATCH", r"/channels/(\d+)/messages/(\d+)", self._edit_message
        yield "GET", r"/channels/(\d+)/messages/(\d+)", self._get_message
        yield "DELETE", r"/channels/(\d+)/messages/(\d+)", self._delete_message
        yield "POST", r"/interactions/(\d+)/([^/]+)/callback", self._interaction_callback
        yield "POST", r"/webhooks/(\d+)/([^/]+)", self._followup
        yield "PATCH", r"/webhooks/(\d+)/([^/]+)/messages/([^/]+)", self._edit_followup

    async def _get_me(self, request: web.Request) -> web.Response:
        if self.refuse_token:
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        return _json(self.bot_user.payload() | {"verified": True, "mfa_enabled": False, "flags": 0})

    async def _get_application(self, request: web.Request) -> web.Response:
        return _json(
            {
                "id": str(self.application_id),
                "name": "costar",
                "icon": None,
                "description": "",
                "bot_public": False,
                "bot_require_code_grant": False,
                "owner": self.owner.payload(),
                "team": None,
                "verify_key": "0" * 64,
                "flags": 0,
                "summary": "",
                "rpc_origins": [],
                "interactions_endpoint_url": None,
            }
        )

    async def _get_gateway(self, request: web.Request) -> web.Response:
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        return _json({"url": self.gateway_url, "shards": 1, "session_start_limit": limit})

    def _store_commands(self, commands: list[dict[str, Any]], guild_id: str | None) -> list[dict[str, Any]]:
        stored = []
        for command in commands:
            full = {
                "id": str(self.new_id()),
                "application_id": str(self.application_id),
                "version": str(self.new_id()),
                "type": 1,
                "default_member_permissions": None,
                "dm_permission": True,
                "nsfw": False,
            } | command
            if guild_id is not None:
                full["guild_id"] = guild_id
            stored.append(full)
        self.synced_commands.extend(stored)
        return stored

    async def _put_global_commands(self, request: web.Request, application_id: str) -> web.Response:
        return _json(self._store_commands(request[_JSON_BODY], None))

    async def _put_guild_commands(self, request: web.Request, application_id: str, guild_id: str) -> web.Response:
        return _json(self._store_commands(request[_JSON_BODY], guild_id))

    async def _typing(self, request: web.Request, channel_id: str) -> web.Response:
        return web.Response(status=204)

    async def _create_message(self, request: web.Request, channel_id: str) -> web.Response:
        body = request[_JSON_BODY] or {}
        if self.hang_sends > 0:
            self.hang_sends -= 1
            self.hung_sends.append(body.get("content") or "")
            await self._closing.wait()  # a server that took the request and went silent
        message = self._message_payload(int(channel_id), self.bot_user, body.get("content") or "")
        message["guild_id"] = str(self.guild.id)
        reference = body.get("message_reference")
        if reference:
            message["type"] = 19
            message["message_reference"] = reference
            message["referenced_message"] = self.messages.get(int(reference["message_id"]))
        self.messages[int(message["id"])] = message
        return _json(message)

    async def _edit_message(self, request: web.Request, channel_id: str, message_id: str) -> web.Response:
        await asyncio.sleep(self.edit_delay_s)
        message = self.messages.get(int(message_id))
        if message is None:
            return _json({"message": "Unknown Message", "code": 10008}, status=404)
        body = request[_JSON_BODY] or {}
        if "content" in body:
            message["content"] = body["content"]
        message["edited_timestamp"] = _timestamp()
        return _json(message)

    async def _get_message(self, request: web.Request, channel_id: str, message_id: str) -> web.Response:
        message = self.messages.get(int(message_id))
        if message is None:
            return _json({"message": "Unknown Message", "code": 10008}, status=404)
        return _json(message)

    async def _delete_message(self, request: web.Request, channel_id: str, message_id: str) -> web.Response:
        if self.messages.pop(int(message_id), None) is None:
            return _json({"message": "Unknown Message", "code": 10008}, status=404)
        return web.Response(status=204)

    async def _interaction_callback(self, request: web.Request, interaction_id: str, token: str) -> web.Response:
        body = request[_JSON_BODY] or {}
        data = body.get("data") or {}
        message = None
        if body.get("type") in (4, 5):  # CHANNEL_MESSAGE_WITH_SOURCE / DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
            message = self._message_payload(self.general.id, self.bot_user, data.get("content") or "")
            message["flags"] = data.get("flags", 0)
        interaction = {
            "id": interaction_id,
            "type": 2,
            "response_message_id": message["id"] if message else None,
            "response_message_loading": body.get("type") == 5,
            "response_message_ephemeral": bool(data.get("flags", 0) & EPHEMERAL_FLAG),
        }
        resource = {"type": body.get("type"), "message": message} if message else {"type": body.get("type")}
        return _json({"interaction": interaction, "resource": resource})

    async def _followup(self, request: web.Request, application_id: str, token: str) -> web.Response:
        body = request[_JSON_BODY] or {}
        message = self._message_payload(self.general.id, self.bot_user, body.get("content") or "")
        message["flags"] = body.get("flags", 0)
        message["webhook_id"] = application_id
        return _json(message)

    async def _edit_followup(
        self, request: web.Request, application_id: str, token: str, message_id: str
    ) -> web.Response:
        body = request[_JSON_BODY] or {}
        message = self._message_payload(self.general.id, self.bot_user, body.get("content") or "")
        return _json(message)
