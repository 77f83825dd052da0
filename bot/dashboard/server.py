"""The streamer's control room: a web page served by the bot (see docs/dashboard.md).

It stands beside the overlay (bot/overlay) and shares its checks (bot/web_guard). Rules:

- Login by a token (moderator or read-only), kept 0600 in DATA_DIR and registered with the log
  redaction; a login sets a session cookie that is HttpOnly and SameSite=Strict (Secure on TLS).
- Every request's Host header must name the bind (loopback names on a loopback bind): a site
  whose name is made to resolve to 127.0.0.1 (DNS rebinding) is refused.
- Every state-changing request (POST) carries the session's CSRF token in ``X-CSRF-Token`` and,
  when the browser sends one, an ``Origin`` equal to the dashboard's own; only a moderator session
  may change anything.
- The websocket feed needs a session and an ``Origin`` equal to the dashboard's own: ``null``
  (a sandboxed frame), a foreign site or none at all is refused.
- A bind beyond loopback without TLS is refused at start with one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from bot.dashboard.cards import Cards
from bot.dashboard.figures import Figures
from bot.dashboard.library import Library
from bot.web_guard import host_name, is_loopback, kept_token, same_secret, strong_enough
from engine.control.review import Decision
from engine.control.room import EVERYWHERE, RoomItem
from engine.errors import ReviewRefused, SettingsError
from engine.manager import ConversationManager
from engine.observability.redact import register_secret
from engine.settings import DashboardSettings, Settings
from engine.stage.cues import AudioCue, AudioStop, Cue

__all__ = ["COOKIE", "DashboardServer", "DashboardTokens", "Role", "dashboard_tokens"]

log = logging.getLogger(__name__)

COOKIE = "costar_dashboard"
CSRF_HEADER = "X-CSRF-Token"
_FILES = {"moderator": "dashboard-token", "read-only": "dashboard-readonly-token"}
_PAGE_FILES = {"": "page.html", "app.js": "app.js", "style.css": "style.css"}
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
BATCH_S = 0.1  # the page gets at most ten updates a second, however fast chat is
MAX_BATCH = 200  # items shown per update; the rest are counted as "+N more"
STATUS_S = 1.0
_MAX_SCOPE_CHARS = 200
_DECISIONS = {"send": Decision.APPROVED, "edit": Decision.EDITED, "drop": Decision.DROPPED}


class Role(enum.StrEnum):
    MODERATOR = "moderator"
    READ_ONLY = "read-only"


@dataclass(frozen=True, slots=True)
class DashboardTokens:
    moderator: str
    read_only: str
    made: tuple[Role, ...] = ()  # the tokens made just now (first start): print them once


@dataclass(slots=True)
class _Session:
    role: Role
    csrf: str
    expires: float


def _token(setting: Any, path: Path, role: Role, variable: str) -> tuple[str, bool]:
    if setting is not None:
        value = strong_enough(setting.get_secret_value(), "dashboard", variable, "set a longer one, or unset it")
        return value, False
    return kept_token(path, f"dashboard {role.value}", variable)


def dashboard_tokens(settings: Settings) -> DashboardTokens:
    """The two login tokens: the settings', else ones kept in DATA_DIR (made on first start)."""
    config = settings.dashboard
    data = settings.core.data_dir
    moderator, made_moderator = _token(
        config.token, data / _FILES["moderator"], Role.MODERATOR, "COSTAR_DASHBOARD_TOKEN"
    )
    read_only, made_read_only = _token(
        config.readonly_token, data / _FILES["read-only"], Role.READ_ONLY, "COSTAR_DASHBOARD_READONLY_TOKEN"
    )
    if same_secret(moderator, read_only):
        raise SettingsError("COSTAR_DASHBOARD_TOKEN and COSTAR_DASHBOARD_READONLY_TOKEN must differ")
    register_secret(moderator, read_only)
    made = tuple(role for role, new in ((Role.MODERATOR, made_moderator), (Role.READ_ONLY, made_read_only)) if new)
    return DashboardTokens(moderator, read_only, made)


def _tls_context(config: DashboardSettings) -> ssl.SSLContext | None:
    if config.tls_cert is None and config.tls_key is None:
        return None
    if config.tls_cert is None or config.tls_key is None:
        raise SettingsError("set both COSTAR_DASHBOARD_TLS_CERT and COSTAR_DASHBOARD_TLS_KEY, or neither")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(f"cannot use the dashboard's TLS certificate or key: {exc}") from None
    return context


class DashboardServer:
    def __init__(self, manager: ConversationManager, config: DashboardSettings, tokens: DashboardTokens) -> None:
        self.manager = manager
        self.config = config
        self.tokens = tokens
        self.host = config.host
        self.port = config.port
        self.tls = _tls_context(config)
        # Names the Host header may carry: the bind, the configured names, loopback on loopback.
        self.hostnames = {self.host.lower(), *(n.strip().lower() for n in config.hostnames.split(",") if n.strip())}
        self._sessions: dict[str, _Session] = {}
        self._sockets: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None
        library, cards = Library(manager), Cards(manager)
        self.actions: dict[str, Callable[[web.Request, dict[str, Any]], Awaitable[RoomItem]]] = {
            "mute": self._mute,
            "review": self._review,
            "approve-mode": self._approve_mode,
            "persona": library.switch_persona,
            "delete-note": library.delete_note,
            "forget": library.forget,
            "card-save": cards.save,
        }
        self.queries: dict[str, Callable[[Any], Awaitable[dict[str, Any]]]] = {
            "personas": library.personas,
            "viewers": library.viewers,
            "viewer": library.viewer,
            "summary": library.summary,
            "cards": cards.cards,
            "card": cards.card,
            "figures": self._figures,
        }
        self.figures = Figures(manager.metrics)
        self._sampling: asyncio.Task[None] | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        shown_host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"{self.scheme}://{shown_host}:{self.port}/dashboard"

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/dashboard", self._page)
        app.router.add_get("/dashboard/", self._page)
        app.router.add_get("/dashboard/{name:app\\.js|style\\.css}", self._page)
        app.router.add_post("/dashboard/login", self._login)
        app.router.add_post("/dashboard/logout", self._logout)
        app.router.add_get("/dashboard/session", self._session_info)
        app.router.add_get("/dashboard/feed", self._feed)
        app.router.add_post("/dashboard/action/{name}", self._action)
        app.router.add_get("/dashboard/api/{name}", self._query)
        return app

    async def start(self) -> None:
        if not is_loopback(self.host) and self.tls is None:
            raise SettingsError(
                f"the dashboard may listen on {self.host} only over HTTPS: set COSTAR_DASHBOARD_TLS_CERT and "
                "COSTAR_DASHBOARD_TLS_KEY, or COSTAR_DASHBOARD_HOST=127.0.0.1"
            )
        self._runner = web.AppRunner(self.app(), handle_signals=False, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.host, self.port, ssl_context=self.tls).start()
        except OSError as exc:
            await self.close()
            raise SettingsError(
                f"the dashboard cannot listen on {self.host}:{self.port} ({exc.strerror or exc}): set "
                "COSTAR_DASHBOARD_PORT to a free port, or COSTAR_DASHBOARD_ENABLED=false"
            ) from None
        self.port = int(self._runner.addresses[0][1])  # port 0 asked the system for a free one
        self._sampling = asyncio.create_task(self.figures.run(), name="dashboard-figures")

    async def close(self) -> None:
        if self._sampling is not None:
            self._sampling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampling
            self._sampling = None
        for socket in list(self._sockets):
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- the rules --------------------------------------------------------------------------

    def _host_allowed(self, request: web.Request) -> bool:
        name = host_name(request.headers.get("Host", ""))
        if is_loopback(self.host):
            return is_loopback(name)
        return name in self.hostnames

    def _own_origin(self, request: web.Request) -> str:
        return f"{self.scheme}://{request.headers.get('Host', '')}".lower()

    def session(self, request: web.Request) -> _Session | None:
        session = self._sessions.get(request.cookies.get(COOKIE, ""))
        if session is None:
            return None
        if session.expires < time.monotonic():
            self._sessions.pop(request.cookies.get(COOKIE, ""), None)
            return None
        return session

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not self._host_allowed(request):
            raise web.HTTPForbidden(text="the dashboard answers only to the address it listens on\n")
        if request.method == "POST":
            origin = request.headers.get("Origin")
            # Browsers send Origin on every cross-site POST; a foreign or "null" one is a forgery.
            if origin is not None and origin.lower() != self._own_origin(request):
                raise web.HTTPForbidden(text="the dashboard takes requests only from its own page\n")
            if request.path != "/dashboard/login":
                session = self.session(request)
                if session is None:
                    raise web.HTTPUnauthorized(text="log in first\n")
                if not same_secret(request.headers.get(CSRF_HEADER, ""), session.csrf):
                    raise web.HTTPForbidden(text="missing or wrong CSRF token: reload the page\n")
        response = await handler(request)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Frame-Options", "DENY")  # no clickjacking the mute button
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    # -- handlers ---------------------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.Response:
        name = _PAGE_FILES[request.match_info.get("name", "")]
        body = resources.files("bot.dashboard").joinpath(name).read_bytes()
        return web.Response(body=body, content_type=_TYPES[Path(name).suffix], charset="utf-8")

    def _role_for(self, given: str) -> Role | None:
        if same_secret(given, self.tokens.moderator):
            return Role.MODERATOR
        if same_secret(given, self.tokens.read_only):
            return Role.READ_ONLY
        return None

    async def _login(self, request: web.Request) -> web.Response:
        form = await request.post()
        given = form.get("token", "")
        role = self._role_for(given.strip() if isinstance(given, str) else "")
        if role is None:
            raise web.HTTPUnauthorized(text="wrong token\n")
        session_id = secrets.token_urlsafe(32)
        session = _Session(role, secrets.token_urlsafe(32), time.monotonic() + self.config.session_hours * 3600)
        self._sessions[session_id] = session
        response = web.json_response({"role": role.value, "csrf": session.csrf})
        response.set_cookie(
            COOKIE,
            session_id,
            path="/dashboard",
            httponly=True,
            samesite="Strict",
            secure=self.tls is not None,
            max_age=int(self.config.session_hours * 3600),
        )
        return response

    async def _logout(self, request: web.Request) -> web.Response:
        self._sessions.pop(request.cookies.get(COOKIE, ""), None)
        response = web.json_response({"ok": True})
        response.del_cookie(COOKIE, path="/dashboard")
        return response

    async def _session_info(self, request: web.Request) -> web.Response:
        session = self.session(request)
        if session is None:
            raise web.HTTPUnauthorized(text="log in first\n")
        return web.json_response({"role": session.role.value, "csrf": session.csrf})

    async def _action(self, request: web.Request) -> web.Response:
        session = self.session(request)
        assert session is not None  # the guard let only sessions through
        if session.role is not Role.MODERATOR:
            raise web.HTTPForbidden(text="a read-only login cannot change anything\n")
        action = self.actions.get(request.match_info["name"])
        if action is None:
            raise web.HTTPNotFound(text="no such action\n")
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="the request body must be JSON\n") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="the request body must be a JSON object\n")
        return web.json_response(await action(request, body))

    async def _figures(self, query: Any) -> dict[str, Any]:
        return self.figures.series()

    async def _query(self, request: web.Request) -> web.Response:
        if self.session(request) is None:
            raise web.HTTPUnauthorized(text="log in first\n")
        query = self.queries.get(request.match_info["name"])
        if query is None:
            raise web.HTTPNotFound(text="no such page\n")
        return web.json_response(await query(request.query))

    async def _feed(self, request: web.Request) -> web.WebSocketResponse:
        if self.session(request) is None:
            raise web.HTTPUnauthorized(text="log in first\n")
        # Any web page may open a websocket to us and the browser would send our cookie along
        # (SameSite does not cover a same-site page on another port): only our own page may.
        if request.headers.get("Origin", "").lower() != self._own_origin(request):
            raise web.HTTPForbidden(text="the dashboard feed is only for the dashboard page\n")
        socket = web.WebSocketResponse(heartbeat=20.0)
        await socket.prepare(request)
        self._sockets.add(socket)
        sender = asyncio.create_task(self._send(socket))
        try:
            async for message in socket:  # the page sends nothing; this notices it leaving
                if message.type is WSMsgType.ERROR:
                    break
        finally:
            sender.cancel()
            self._sockets.discard(socket)
        return socket

    async def _send(self, socket: web.WebSocketResponse) -> None:
        room = self.manager.control
        with room.watch() as watcher, self.manager.stage.subscribe(_shown_cue) as cues:
            forward = asyncio.create_task(_forward_cues(cues, watcher.offer))
            try:
                await socket.send_json({"type": "hello", **self.snapshot()})
                last_status = 0.0
                while not socket.closed:
                    with contextlib.suppress(TimeoutError):  # no news: the status still refreshes
                        await asyncio.wait_for(watcher.wait(), timeout=STATUS_S)
                    await asyncio.sleep(BATCH_S)  # gather a flood into one update
                    items = watcher.take()
                    lost, watcher.lost = watcher.lost, 0
                    if time.monotonic() - last_status >= STATUS_S:
                        items.append(room.status())
                        last_status = time.monotonic()
                    if items or lost:
                        await socket.send_json(batch(items, lost))
            except (ConnectionError, RuntimeError) as exc:  # the page went away mid-send
                log.debug("dashboard page left: %s", exc)
            finally:
                forward.cancel()

    def snapshot(self) -> dict[str, Any]:
        """What a page that just connected shows at once."""
        return {
            "replies": [cue.wire() for cue in self.manager.stage.live()],
            "muted": self.manager.control.muted_scopes,
            "held": [held.wire() for held in self.manager.control.approvals.held.values()],
            "approve": self.manager.control.approvals.modes,
        }

    # -- actions (moderator sessions only, CSRF-checked by the guard) --------------------------

    async def _mute(self, request: web.Request, body: dict[str, Any]) -> RoomItem:
        scope, muted = body.get("scope", EVERYWHERE), body.get("muted", True)
        if not isinstance(scope, str) or not 0 < len(scope) <= _MAX_SCOPE_CHARS or not isinstance(muted, bool):
            raise web.HTTPBadRequest(text='mute takes {"scope": "*" or a channel, "muted": true or false}\n')
        await self.manager.mute(scope, muted)
        return {"type": "mute", "scopes": self.manager.control.muted_scopes}

    async def _review(self, request: web.Request, body: dict[str, Any]) -> RoomItem:
        held_id, choice, text = body.get("id"), body.get("decision"), body.get("text")
        decision = _DECISIONS.get(choice) if isinstance(choice, str) else None
        if not isinstance(held_id, str) or decision is None or (text is not None and not isinstance(text, str)):
            raise web.HTTPBadRequest(
                text='review takes {"id": ..., "decision": "send", "edit" or "drop", "text": ...}\n'
            )
        try:
            await self.manager.decide(held_id, decision, text)
        except ReviewRefused as refused:
            raise web.HTTPConflict(text=f"{refused}\n") from None
        return {"type": "decided", "id": held_id, "decision": decision.value}

    async def _approve_mode(self, request: web.Request, body: dict[str, Any]) -> RoomItem:
        scope, mode = body.get("scope"), body.get("mode")
        if not isinstance(scope, str) or not isinstance(mode, str):
            raise web.HTTPBadRequest(text='approve-mode takes {"scope": ..., "mode": ...}\n')
        try:
            self.manager.control.approvals.set_mode(scope, mode)
        except SettingsError as refused:
            raise web.HTTPBadRequest(text=f"{refused}\n") from None
        return {"type": "approve", "modes": self.manager.control.approvals.modes}


def batch(items: list[RoomItem], lost: int) -> RoomItem:
    """One update: the newest MAX_BATCH items, and how many more there were (``more``)."""
    shown = items[-MAX_BATCH:]
    return {"type": "batch", "items": shown, "more": lost + len(items) - len(shown)}


def _shown_cue(cue: Cue) -> bool:
    return not isinstance(cue, AudioCue | AudioStop)  # the dashboard shows words, not sound


async def _forward_cues(cues: Any, offer: Callable[[RoomItem], None]) -> None:
    async for cue in cues:
        offer(cue.wire())
