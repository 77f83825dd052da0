"""YouTube Live chat through the official YouTube Data API v3 (google-api-python-client).

It only translates, as every adapter does: ``liveChatMessages.list`` pages become ``ChatEvent`` and
``StreamEvent`` (:mod:`bot.youtube.messages`) for the one chat session (:mod:`bot.session`), and the
session's replies go out through ``liveChatMessages.insert``. The chat is found with
``liveBroadcasts.list`` (YOUTUBE_BROADCAST_ID, or the logged-in channel's active broadcast).

Reading (YOUTUBE_READ) streams by default: ``liveChatMessages.streamList`` over gRPC
(:mod:`bot.youtube.stream`) pushes each page as it comes, and a dropped call is opened again from the
last ``nextPageToken``. When YouTube refuses the method (UNIMPLEMENTED, PERMISSION_DENIED) or the call
fails ``_STREAM_TRIES`` times in a row, one log line says so and reading goes on by polling from the
same page token. Polling honours the API's ``pollingIntervalMillis``, and polls no faster than the
day's reading share of the quota allows (:class:`bot.youtube.quota.QuotaPlan`). Streamed and polled
pages go down one path; it follows ``nextPageToken`` and stops at ``offlineAt``, ``chatEndedEvent``
or ``liveChatEnded``. Sending spends
the sending share, spread over the stream (one reply every ``send_every_s`` at most, the session's
send budget); every unit is counted in a file that survives a restart, and before the share runs out
sending stops with one log line while reading goes on. ``rateLimitExceeded`` pauses sending for
YOUTUBE_RATE_LIMIT_PAUSE_S; ``quotaExceeded`` stops sending (and, on a read, reading) until the quota
resets at midnight Pacific time. The client library is synchronous (httplib2): every call runs in a
worker thread, reading and sending each on their own HTTP connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from bot.commands import PlatformCommands
from bot.errors import one_line
from bot.session import ChatSession, NotSent, SendLimits
from bot.youtube.auth import YouTubeTokenStore, token_path
from bot.youtube.limits import YOUTUBE_LIMITS, youtube_safe
from bot.youtube.messages import PLATFORM, ChatEnded, GifterNames, convert, message_text
from bot.youtube.quota import (
    BROADCASTS_LIST_COST,
    INSERT_COST,
    LIST_COST,
    STREAM_LIST_COST,
    QuotaLedger,
    QuotaPlan,
)
from bot.youtube.settings import YouTubeSettings, youtube_settings
from bot.youtube.stream import ChatStream, secure_channel
from engine.base.clock import Clock, MonotonicClock
from engine.base.recent import RecentlyUsed
from engine.errors import EngineError, SettingsError
from engine.events import ChatEvent, Reply, StreamEvent
from engine.flow.scheduler import ReplyScheduler, SchedulerConfig
from engine.settings import Settings
from engine.stream.director import StreamDirector

if TYPE_CHECKING:
    from google.oauth2.credentials import Credentials

    from engine.manager import ConversationManager

__all__ = ["YouTubeAdapter", "YouTubeError"]

logger = logging.getLogger(__name__)

_PARTS = "id,snippet,authorDetails"
_RETRY_S = 5.0  # after an error that says nothing of when to come back
_MAX_RESULTS = 2000  # the most one list page may hold: a flood is read in as few polls as it can
_STREAM_TRIES = 3  # streamList calls failing in a row before reading falls back to polling
# gRPC codes that say streamList is not for this project or token: polling, at once.
_STREAM_REFUSED = frozenset({grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.PERMISSION_DENIED})


class YouTubeError(EngineError):
    """The YouTube Data API refused a call; ``reason`` is its error reason (quotaExceeded, …)."""

    def __init__(self, reason: str, status: int, doing: str) -> None:
        super().__init__(f"YouTube refused {doing}: {reason} (HTTP {status})")
        self.reason = reason
        self.status = status


def _failure(exc: HttpError, doing: str) -> YouTubeError:
    """The API's error reason, read from its JSON error body (never the URL: it can hold a key)."""
    status = int(getattr(exc.resp, "status", 0) or 0)
    try:
        error = json.loads(exc.content)["error"]
        reason = str(error["errors"][0]["reason"])
    except (ValueError, KeyError, IndexError, TypeError):
        reason = "unknown"
    return YouTubeError(reason, status, doing)


class YouTubeAdapter:
    """``await YouTubeAdapter(settings, manager).start()`` reads until the chat ends or :meth:`close`."""

    def __init__(
        self,
        settings: Settings,
        manager: ConversationManager,
        *,
        youtube: YouTubeSettings | None = None,
        api_endpoint: str | None = None,
        credentials: Credentials | None = None,
        clock: Clock | None = None,
        stream_channel: Callable[[], grpc.aio.Channel] = secure_channel,
    ) -> None:
        self.settings = settings
        self.youtube = youtube or youtube_settings(settings)
        self.manager = manager
        self.api_endpoint = api_endpoint  # tests: a local fake YouTube
        self.stream_channel = stream_channel  # tests: an insecure channel to the fake's gRPC port
        self.clock: Clock = clock or MonotonicClock()
        manager.platform_limits.setdefault(PLATFORM, YOUTUBE_LIMITS)  # when made without bot.app
        self.token_store = YouTubeTokenStore(token_path(settings, self.youtube))
        self._credentials = credentials
        self.plan = QuotaPlan(self.youtube.quota_units_per_day, self.youtube.stream_hours, self.youtube.reply_share)
        quota_path = self.youtube.quota_file or settings.core.data_dir / "youtube_quota.json"
        self.ledger = QuotaLedger(Path(quota_path), self.plan)
        self.commands = PlatformCommands(
            manager,
            clock=self.clock,
            cooldown_s=self.youtube.command_cooldown_s,
        )
        self.session = ChatSession(
            manager,
            self,
            platform=PLATFORM,
            settings=settings,
            # One message every send_every_s: the day's sending share lasts the whole stream.
            send_limits=SendLimits(1, self.plan.send_every_s),
            scheduler=SchedulerConfig(
                max_in_flight=settings.backend.max_concurrency,
                user_cooldown_s=self.youtube.reply_cooldown_s,
                stale_after_s=self.youtube.stale_after_s,
                answer_unaddressed=self.youtube.chime_in,
                channels_kept=settings.core.channels_kept,
            ),
            commands=self.commands,
            clock=self.clock,
            on_persona_changed=self._forget_names,
        )
        self.chat_id: str | None = None
        self.ready = asyncio.Event()
        self.polls = 0
        self.streamed_pages = 0
        self._live_credentials: Credentials | None = None
        self._stream: ChatStream | None = None
        self._reader: Any = None
        self._sender: Any = None
        self._send_lock = asyncio.Lock()
        self._stopped = asyncio.Event()
        self._sent_ids: RecentlyUsed[str, bool] = RecentlyUsed(4096)  # our own messages, read back
        # The text being inserted now, and set once YouTube has said its id: the reader can get our
        # own message (a poll, the stream) before the insert's answer does, and must wait for the id.
        self._in_flight: tuple[str, asyncio.Event] | None = None
        self._gifters = GifterNames()
        self._names: re.Pattern[str] | None = None
        self._paused_until = 0.0
        self._told: set[str] = set()  # what was said once: the quota stop

    @property
    def director(self) -> StreamDirector:
        return self.session.director

    @property
    def scheduler(self) -> ReplyScheduler:
        assert self.session.scheduler is not None
        return self.session.scheduler

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        credentials: Credentials = (
            self._credentials if self._credentials is not None else await asyncio.to_thread(self.token_store.load)
        )
        self._live_credentials = credentials
        self._reader, self._sender = await asyncio.to_thread(self._services, credentials)
        await self.session.start()
        try:
            self.chat_id = await self._find_chat()
            self.manager.warm(PLATFORM, self.chat_id)
            self.director.set_live(PLATFORM, self.chat_id, True)
            self.ready.set()
            await self._read(self.chat_id)
            await self._finish_answers()
        finally:
            await self.session.close()
            if self._credentials is None:  # google-auth may have refreshed it meanwhile
                await asyncio.to_thread(self.token_store.save, credentials)

    def _services(self, credentials: Credentials) -> tuple[Any, Any]:
        """Two clients, each with its own HTTP connection (httplib2 is not thread-safe)."""
        options = {"api_endpoint": self.api_endpoint} if self.api_endpoint else None

        def one() -> Any:
            return build("youtube", "v3", credentials=credentials, client_options=options, static_discovery=True)

        return one(), one()

    async def drain(self, grace_s: float) -> None:
        self._stop_reading()
        await self.session.drain(grace_s)

    async def close(self) -> None:
        self._stop_reading()
        await self.session.close()

    def _stop_reading(self) -> None:
        self._stopped.set()
        if self._stream is not None:  # an open stream waits for YouTube's next page: end it now
            self._stream.stop()

    async def _finish_answers(self) -> None:
        """The chat ended: replies already queued get until they go stale to be sent."""
        if self._stopped.is_set():
            return
        try:
            async with asyncio.timeout(self.youtube.stale_after_s):
                await self.scheduler.join()
        except TimeoutError:
            pass

    # -- the API ----------------------------------------------------------------------------

    async def _execute(self, request: Any, doing: str) -> dict[str, Any]:
        try:
            result: dict[str, Any] = await asyncio.to_thread(request.execute)
        except HttpError as exc:
            raise _failure(exc, doing) from None
        return result

    async def _find_chat(self) -> str:
        broadcasts = self._reader.liveBroadcasts()
        wanted = self.youtube.broadcast_id
        if wanted:
            request = broadcasts.list(part="snippet,status", id=wanted)
        else:
            request = broadcasts.list(part="snippet,status", mine=True, broadcastStatus="active")
        response = await self._execute(request, "listing the live broadcasts")
        self.ledger.spend_read(BROADCASTS_LIST_COST)
        for broadcast in response.get("items", []):
            chat_id = (broadcast.get("snippet") or {}).get("liveChatId")
            if chat_id:
                logger.info("reading the live chat of %r", broadcast["snippet"].get("title", broadcast.get("id")))
                return str(chat_id)
        which = f"broadcast {wanted}" if wanted else "an active broadcast on the logged-in channel"
        raise SettingsError(f"YouTube has no live chat for {which}: start the stream, or set YOUTUBE_BROADCAST_ID")

    # -- reading ----------------------------------------------------------------------------

    async def _read(self, chat_id: str) -> None:
        """Stream (or poll) until the chat ends, the quota is spent or the adapter stops."""
        page_token: str | None = None
        if self.youtube.read == "stream":
            ended, page_token = await self._stream_chat(chat_id)
            if ended:
                return
        await self._poll(chat_id, page_token)

    async def _stream_chat(self, chat_id: str) -> tuple[bool, str | None]:
        """Read over streamList: (whether reading is over, the last page token) once it stops.

        Not over means polling should take over from that token."""
        self._stream = ChatStream(chat_id, self.stream_channel(), self._bearer)
        try:
            return await self._stream_pages(chat_id, self._stream)
        finally:
            await self._stream.close()
            self._stream = None

    async def _stream_pages(self, chat_id: str, stream: ChatStream) -> tuple[bool, str | None]:
        page_token: str | None = None
        failures = 0
        while not self._stopped.is_set():
            if not self.ledger.may_read():
                logger.error("YouTube quota for today is spent: reading stops until midnight Pacific time")
                return True, page_token
            opened = self.clock.now()
            self.ledger.spend_read(STREAM_LIST_COST)
            try:
                async for page in stream.pages(page_token):
                    failures = 0
                    self.streamed_pages += 1
                    if not await self._take_page(chat_id, page):
                        return True, page_token
                    page_token = page.get("nextPageToken") or page_token
            except grpc.aio.AioRpcError as exc:
                failures += 1
                if exc.code() in _STREAM_REFUSED or failures >= _STREAM_TRIES:
                    logger.warning(
                        "YouTube streamList failed (%s: %s): reading the chat by polling instead",
                        exc.code().name,
                        " ".join((exc.details() or "").split()),
                    )
                    return False, page_token
                logger.info("the YouTube chat stream broke (%s): opening it again", exc.code().name)
            # The call ended or broke: open the next one (from the last token) no sooner than the
            # reading share of the quota allows, as a poll would.
            await self._wait(self.plan.poll_every_s - (self.clock.now() - opened))
        return True, page_token

    async def _bearer(self) -> str:
        """The OAuth access token for a gRPC call, refreshed first when it has expired."""
        credentials = self._live_credentials
        assert credentials is not None
        if not credentials.valid:
            from google.auth.transport.requests import Request

            await asyncio.to_thread(credentials.refresh, Request())
        return str(credentials.token)

    async def _take_page(self, chat_id: str, page: dict[str, Any]) -> bool:
        """One page of messages, streamed or polled; False when it ends the chat."""
        for item in page.get("items", []):
            if not await self._take(item):
                return False
        if page.get("offlineAt"):
            logger.info("the YouTube stream went offline at %s: reading stops", page["offlineAt"])
            self.director.set_live(PLATFORM, chat_id, False)
            return False
        return True

    async def _poll(self, chat_id: str, page_token: str | None) -> None:
        """Poll from ``page_token`` until the chat ends, the quota is spent or the adapter stops."""
        while not self._stopped.is_set():
            if not self.ledger.may_read():
                logger.error("YouTube quota for today is spent: reading stops until midnight Pacific time")
                return
            request = self._reader.liveChatMessages().list(
                liveChatId=chat_id, part=_PARTS, pageToken=page_token, maxResults=_MAX_RESULTS
            )
            try:
                page = await self._execute(request, "reading the chat")
            except YouTubeError as exc:
                self.ledger.spend_read(LIST_COST)
                if not await self._read_failed(exc):
                    return
                continue
            self.ledger.spend_read(LIST_COST)
            self.polls += 1
            if not await self._take_page(chat_id, page):
                return
            page_token = page.get("nextPageToken") or page_token
            await self._wait(max(int(page.get("pollingIntervalMillis") or 0) / 1000, self.plan.poll_every_s))

    async def _read_failed(self, exc: YouTubeError) -> bool:
        """Whether to read on after a refused poll."""
        if exc.reason == "liveChatEnded":
            logger.info("the YouTube live chat ended: reading stops")
            return False
        if exc.reason == "quotaExceeded":
            self.ledger.mark_exhausted()
            logger.error("YouTube says the day's quota is spent: reading stops until midnight Pacific time")
            return False
        pause = self.youtube.rate_limit_pause_s if exc.reason == "rateLimitExceeded" else _RETRY_S
        logger.warning("%s; reading again in %g s", one_line(exc), pause)
        await self._wait(pause)
        return True

    async def _wait(self, seconds: float) -> None:
        """Sleep on the adapter's clock, or until it stops."""
        stopped = asyncio.ensure_future(self._stopped.wait())
        slept = asyncio.ensure_future(self.clock.sleep(seconds))
        try:
            await asyncio.wait({stopped, slept}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            slept.cancel()

    async def _take(self, item: dict[str, Any]) -> bool:
        """One message read; False when it ends the chat."""
        in_flight = self._in_flight
        if in_flight is not None and message_text(item) == in_flight[0]:
            await in_flight[1].wait()
        if str(item.get("id")) in self._sent_ids:
            return True  # our own message, read back
        try:
            converted = convert(item, await self._addresses(), self._gifters)
        except (KeyError, ValueError, TypeError) as exc:  # a shape costar did not expect: lose only this one
            logger.warning("a YouTube chat message could not be read: %s: %s", type(exc).__name__, exc)
            return True
        if isinstance(converted, ChatEnded):
            logger.info("the YouTube live chat ended: reading stops")
            return False
        if isinstance(converted, ChatEvent) and self.session.taking_lines:
            await self.session.take_line(converted)
        elif isinstance(converted, StreamEvent):
            await self.session.take_stream(converted)
        return True

    async def _addresses(self) -> Any:
        """A test for whether a line names the character (persona names, COSTAR_BOT_NAME)."""
        if self._names is None:
            assert self.chat_id is not None
            card = await self.manager.persona_for(PLATFORM, self.chat_id)
            names = {card.name, card.display_name, self.settings.core.bot_name or ""}
            alternatives = "|".join(re.escape(n) for n in sorted(names - {""}, key=len, reverse=True))
            self._names = re.compile(rf"(?<!\w)@?(?:{alternatives})(?!\w)", re.IGNORECASE)
        pattern = self._names
        return lambda text: pattern.search(text) is not None

    def _forget_names(self, channel_id: str) -> None:
        self._names = None

    # -- sending: the session's outlet ------------------------------------------------------

    async def send(self, channel_id: str, text: str, *, reply_to: str | None, said: Reply | None) -> str | None:
        """YouTube's id of the message, or None when it refused; NotSent when nothing was asked."""
        safe = youtube_safe(text)
        if safe is None or self.clock.now() < self._paused_until or not self._may_send():
            raise NotSent
        body = {
            "snippet": {
                "liveChatId": channel_id,
                "type": "textMessageEvent",
                "textMessageDetails": {"messageText": safe},
            }
        }
        async with self._send_lock:
            landed = asyncio.Event()
            self._in_flight = (safe, landed)
            try:
                sent = await self._execute(
                    self._sender.liveChatMessages().insert(part="snippet", body=body), "sending a message"
                )
                sent_id = str(sent.get("id", ""))
                self._sent_ids[sent_id] = True
            except YouTubeError as exc:
                self.ledger.spend_send(INSERT_COST)  # a refused request costs quota too
                self._send_failed(exc)
                return None
            finally:
                self._in_flight = None
                landed.set()
        self.ledger.spend_send(INSERT_COST)
        return sent_id or None

    def paused_for(self, channel_id: str) -> float:
        """Seconds until YouTube takes a message again: a rateLimitExceeded pause, or the rest of the
        day once the sending share (or YouTube's quota) is spent. Nothing is generated meanwhile."""
        if not self._may_send():
            return math.inf
        return max(0.0, self._paused_until - self.clock.now())

    def _may_send(self) -> bool:
        if self.ledger.may_send():
            return True
        if "quota" not in self._told:  # one line, not one per reply
            self._told.add("quota")
            logger.warning(
                "YouTube sending share of today's quota is spent (%d of %d units): not sending until midnight"
                " Pacific time; still reading",
                self.ledger.send_units,
                self.plan.send_units,
            )
        return False

    def _send_failed(self, exc: YouTubeError) -> None:
        if exc.reason == "rateLimitExceeded":
            self._paused_until = self.clock.now() + self.youtube.rate_limit_pause_s
            logger.warning("YouTube says we send too fast: sending nothing for %g s", self.youtube.rate_limit_pause_s)
        elif exc.reason == "quotaExceeded":
            self.ledger.refuse_sending()
            self._told.add("quota")  # this line says it: not the share's line as well
            logger.warning(
                "YouTube says the day's quota is spent: not sending until midnight Pacific time; still reading"
            )
        elif exc.reason == "liveChatEnded":
            logger.info("the YouTube live chat ended: reading stops")
            self._stopped.set()
        else:
            logger.warning("sending to YouTube failed: %s", one_line(exc))
