"""Serves the overlay page and its websocket feed of stage cues (see docs/overlay.md).

``POST /hearing/talk?held=true|false[&for=SECONDS]&token=…`` holds or releases push-to-talk for
hearing (docs/hearing.md): it changes state, so it takes POST only and its token even on loopback.

``GET /overlay`` is the page; ``GET /overlay/feed`` the websocket it keeps open: a ``hello`` (this
server's instance id, the personas' card styles and the default persona), the replies streaming right now, then every
cue in publishing order. ``persona`` and ``channel`` query parameters narrow the feed; ``token``
must match when one is set (always when the server listens beyond loopback).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

from aiohttp import WSMsgType, web

from bot.web_guard import host_name as _host_name
from bot.web_guard import is_loopback as _is_loopback
from bot.web_guard import kept_token, strong_enough
from bot.web_guard import same_secret as _same_secret
from engine.errors import SettingsError
from engine.hearing.listener import TalkToggle
from engine.observability.redact import register_secret
from engine.settings import Settings
from engine.stage.cues import Cue, HostCaptionCue
from engine.stage.feed import Stage, Subscription

__all__ = ["OverlayServer", "cue_filter", "overlay_token"]

log = logging.getLogger(__name__)

_TOKEN_FILE = "overlay-token"


def _is_obs(origin: str) -> bool:
    # OBS's browser source sends no Origin for the page, and "obsstudio" (or its scheme) at most.
    return origin == "obsstudio" or origin.startswith("obsstudio:")


def _strong_enough(token: str, source: str, fix: str) -> str:
    return strong_enough(token, "overlay", source, fix)


def overlay_token(settings: Settings, *, even_on_loopback: bool = False) -> str | None:
    """The secret the overlay URL must carry: the setting, else (beyond loopback) one kept in DATA_DIR.

    ``even_on_loopback``: for what changes state (push-to-talk), which any local program or web
    page could otherwise call; the page and its feed only show what is on stream anyway.

    A kept token survives restarts, so the URL pasted into OBS keeps working. An empty or short one
    (an emptied file, a typo) is refused: it would let anyone on the network read the feed.
    """
    if settings.overlay.token is not None:
        token = settings.overlay.token.get_secret_value()  # a SecretStr setting: redacted already
        return _strong_enough(token, "COSTAR_OVERLAY_TOKEN", "set a longer one, or unset it to have one made")
    if _is_loopback(settings.overlay.host) and not even_on_loopback:
        return None
    token, _ = kept_token(settings.core.data_dir / _TOKEN_FILE, "overlay", "COSTAR_OVERLAY_TOKEN")
    register_secret(token)
    return token


def cue_filter(query: Mapping[str, str]) -> Callable[[Cue], bool]:
    """The feed's ``persona=a,b`` and ``channel=twitch,discord:123`` narrowing (a platform or a full
    channel), and ``captions=``: ``character`` (the default), ``host`` (the streamer's own lines,
    heard), or both."""
    personas = {part.strip() for part in query.get("persona", "").split(",") if part.strip()}
    channels = {part.strip() for part in query.get("channel", "").split(",") if part.strip()}
    captions = {part.strip() for part in query.get("captions", "character").split(",") if part.strip()}

    def wants(cue: Cue) -> bool:
        # The host's lines go only to a page that asked for them: a page set up for the
        # character's captions never starts showing the streamer's words.
        if isinstance(cue, HostCaptionCue):
            if "host" not in captions:
                return False
        elif "character" not in captions or (personas and cue.persona_id not in personas):
            return False
        platform = cue.channel.split(":", 1)[0]
        return not channels or cue.channel in channels or platform in channels

    return wants


class OverlayServer:
    def __init__(
        self,
        stage: Stage,
        card_styles: Mapping[str, Mapping[str, Any]],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        default_persona: str | None = None,
        talk: TalkToggle | None = None,
        control_token: str | None = None,
    ) -> None:
        self.stage = stage
        self.talk = talk  # push-to-talk, when hearing is in that mode
        self.control_token = control_token  # what POST /hearing/talk must carry, on loopback too
        self.card_styles = dict(card_styles)
        self.default_persona = default_persona  # whose caption ?preview=1 shows unless persona= says
        self.host = host
        self.port = port
        self.token = token
        self.instance = uuid.uuid4().hex  # a page seeing a new one knows the bot restarted
        self._page = resources.files("bot.overlay").joinpath("page.html").read_bytes()
        self._sockets: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None

    @property
    def base(self) -> str:
        shown_host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{shown_host}:{self.port}"

    @property
    def url(self) -> str:
        """The address to paste into OBS (with the token when one is needed)."""
        return f"{self.base}/overlay" + (f"?token={self.token}" if self.token else "")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/overlay", self._page_handler)
        app.router.add_get("/overlay/", self._page_handler)
        app.router.add_get("/overlay/feed", self._feed_handler)
        app.router.add_post("/hearing/talk", self._talk_handler)
        return app

    async def start(self) -> None:
        if not _is_loopback(self.host):  # a token set to "" would otherwise let everyone in
            _strong_enough(self.token or "", f"use on {self.host}", "see COSTAR_OVERLAY_TOKEN")
        self._runner = web.AppRunner(self.app(), handle_signals=False, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.host, self.port).start()
        except OSError as exc:  # the port is taken (often by an earlier costar), or the host is not ours
            await self.close()
            raise SettingsError(
                f"the overlay cannot listen on {self.host}:{self.port} ({exc.strerror or exc}): "
                "another program may use that port; set COSTAR_OVERLAY_PORT to a free one "
                "(or COSTAR_OVERLAY_HOST to this machine's address)"
            ) from None
        self.port = int(self._runner.addresses[0][1])  # port 0 asked the system for a free one

    async def close(self) -> None:
        for socket in list(self._sockets):
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- handlers ---------------------------------------------------------------------------

    def _check(self, request: web.Request) -> None:
        if self.token is not None and not _same_secret(request.query.get("token", ""), self.token):
            raise web.HTTPForbidden(text="overlay token missing or wrong: copy the whole URL costar printed\n")
        self._check_origin(request)

    def _check_origin(self, request: web.Request) -> None:
        host = request.headers.get("Host", "")
        # DNS rebinding: a web page on evil.example whose name now points at 127.0.0.1 reaches us
        # with "Host: evil.example:PORT". On a loopback bind only loopback names are ours.
        if _is_loopback(self.host) and not _is_loopback(_host_name(host)):
            raise web.HTTPForbidden(text="the overlay answers only to 127.0.0.1 or localhost\n")
        # Browsers let any web page open a websocket to us: only our own page (same origin as the
        # Host checked above) and OBS may read the feed. "null" is a sandboxed frame on any site.
        origin = request.headers.get("Origin")
        if origin is not None and not _is_obs(origin) and origin.lower() != f"{request.scheme}://{host}".lower():
            raise web.HTTPForbidden(text="the overlay feed is only for the overlay page\n")

    async def _page_handler(self, request: web.Request) -> web.Response:
        self._check(request)
        return web.Response(body=self._page, content_type="text/html", charset="utf-8")

    async def _talk_handler(self, request: web.Request) -> web.Response:
        if self.talk is None or self.control_token is None:
            raise web.HTTPNotFound(text="push-to-talk is off: set COSTAR_HEARING_ANSWER=push_to_talk\n")
        if not _same_secret(request.query.get("token", ""), self.control_token):
            raise web.HTTPForbidden(text="push-to-talk token missing or wrong: use the URL costar printed\n")
        self._check_origin(request)  # a web page's form posted cross-site carries its own Origin
        held, for_s = _talk_request(request.query)
        releases_in_s = self.talk(held, for_s)
        return web.json_response({"held": held, "releases_in_s": releases_in_s})

    async def _feed_handler(self, request: web.Request) -> web.WebSocketResponse:
        self._check(request)
        wants = cue_filter(request.query)
        socket = web.WebSocketResponse(heartbeat=20.0)
        await socket.prepare(request)
        # Subscribe and read the live replies in one step: nothing published falls between them.
        with self.stage.subscribe(wants) as cues:
            live = [cue for cue in self.stage.live() if wants(cue)]
            self._sockets.add(socket)
            sender = asyncio.create_task(self._send(socket, cues, live))
            try:
                async for message in socket:  # the page sends nothing; this notices it leaving
                    if message.type is WSMsgType.ERROR:
                        break
            finally:
                sender.cancel()
                self._sockets.discard(socket)
        return socket

    async def _send(self, socket: web.WebSocketResponse, cues: Subscription, live: list[Any]) -> None:
        try:
            await socket.send_json(
                {
                    "type": "hello",
                    "server": self.instance,
                    "personas": self.card_styles,
                    "default_persona": self.default_persona,
                }
            )
            for cue in live:
                await socket.send_json(cue.wire())
            async for cue in cues:
                await socket.send_json(cue.wire())
        except (ConnectionError, RuntimeError) as exc:  # the page went away mid-send
            log.debug("overlay page left: %s", exc)
            await socket.close()


def _talk_request(query: Mapping[str, str]) -> tuple[bool, float | None]:
    """``held=true|false`` and the optional ``for=SECONDS``; anything else is a 400 that says why."""
    held = query.get("held", "").strip().lower()
    if held not in ("true", "false", "1", "0"):
        raise web.HTTPBadRequest(text="push-to-talk needs held=true or held=false\n")
    if "for" not in query:
        return held in ("true", "1"), None
    try:
        for_s = float(query["for"])
    except ValueError:
        for_s = -1.0
    if not 0 < for_s < float("inf"):
        raise web.HTTPBadRequest(text="for= must be a number of seconds above 0\n")
    return held in ("true", "1"), for_s


def card_styles(cards: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """persona id -> its card's ``overlay:`` section, as the page reads it (unset keys left out)."""
    return {persona_id: card.overlay.model_dump(exclude_none=True) for persona_id, card in cards.items()}
