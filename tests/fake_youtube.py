"""A local fake of the YouTube Data API v3 for tests: the live chat endpoints, in the API's JSON shapes.

The real client library (google-api-python-client) is pointed at it with
``client_options={"api_endpoint": fake.url}``. It serves ``liveBroadcasts.list``,
``liveChatMessages.list`` (pages with ``nextPageToken``, ``pollingIntervalMillis`` and, once the
stream ends, ``offlineAt``) and ``liveChatMessages.insert``; a call can be made to fail with the API's
error body and reason (``fail_next``). It records every request it got.

It also serves ``liveChatMessages.streamList`` over gRPC (``grpc_target``, an insecure local port): the
same chat, pushed page by page down an open call from the request's page token, ending with
``offlineAt`` as the list does. A stream can be dropped once after a given position (``drop_stream_at``)
or every call refused with a gRPC status (``refuse_stream``, e.g. UNIMPLEMENTED).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
from aiohttp import web

from bot.youtube import stream_list_pb2, stream_list_pb2_grpc
from bot.youtube.stream import message_of

__all__ = ["FakeYouTube", "Recorded", "text_message"]

BROADCAST_ID = "bcast-1"
CHAT_ID = "live-chat-1"
OWNER_CHANNEL = "UC-owner"


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def author(
    channel_id: str, name: str, *, owner: bool = False, moderator: bool = False, member: bool = False
) -> dict[str, Any]:
    return {
        "channelId": channel_id,
        "channelUrl": f"http://www.youtube.com/channel/{channel_id}",
        "displayName": name,
        "profileImageUrl": "https://yt3.ggpht.com/a/default-user=s88",
        "isVerified": False,
        "isChatOwner": owner,
        "isChatSponsor": member,
        "isChatModerator": moderator,
    }


def message(message_id: str, kind: str, who: dict[str, Any], display: str = "", **details: Any) -> dict[str, Any]:
    snippet: dict[str, Any] = {
        "type": kind,
        "liveChatId": CHAT_ID,
        "authorChannelId": who["channelId"],
        "publishedAt": now_iso(),
        "hasDisplayContent": bool(display),
        "displayMessage": display,
    }
    snippet.update(details)
    return {
        "kind": "youtube#liveChatMessage",
        "etag": f"etag-{message_id}",
        "id": message_id,
        "snippet": snippet,
        "authorDetails": who,
    }


def text_message(message_id: str, who: dict[str, Any], text: str) -> dict[str, Any]:
    return message(message_id, "textMessageEvent", who, text, textMessageDetails={"messageText": text})


def error_body(status: int, reason: str, text: str) -> dict[str, Any]:
    domain = "youtube.quota" if reason == "quotaExceeded" else "youtube.liveChat"
    return {
        "error": {
            "code": status,
            "message": text,
            "errors": [{"message": text, "domain": domain, "reason": reason}],
        }
    }


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    at: float


@dataclass
class StreamCall:
    page_token: str  # "" when the call asked for the chat from its start
    authorization: str


class _StreamList(stream_list_pb2_grpc.V3DataLiveChatMessageServiceServicer):
    def __init__(self, fake: FakeYouTube) -> None:
        self.fake = fake

    async def StreamList(  # the gRPC method's name
        self, request: stream_list_pb2.LiveChatMessageListRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        fake = self.fake
        metadata = dict(context.invocation_metadata() or ())
        fake.stream_calls.append(StreamCall(request.page_token, str(metadata.get("authorization", ""))))
        if fake.refuse_stream is not None:
            await context.abort(fake.refuse_stream, "The method is not available to this project.")
        if request.live_chat_id != CHAT_ID:
            await context.abort(grpc.StatusCode.NOT_FOUND, "The live chat was not found.")
        position = int(request.page_token or 0)
        first = True
        while True:
            items = fake.chat[position : position + fake.page_size]
            ended = fake.offline and position + len(items) >= len(fake.chat)
            if items or first or ended:
                first = False
                position += len(items)
                response = stream_list_pb2.LiveChatMessageListResponse(
                    items=[message_of(item) for item in items], next_page_token=str(position)
                )
                if ended:
                    response.offline_at = now_iso()
                yield response
                if ended:
                    return
                if fake.drop_stream_at is not None and position >= fake.drop_stream_at:
                    fake.drop_stream_at = None  # once
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "The stream was reset.")
            await asyncio.sleep(0.01)


@dataclass
class FakeYouTube:
    polling_interval_ms: int = 50
    live: bool = True
    chat: list[dict[str, Any]] = field(default_factory=list)  # every message, in order
    requests: list[Recorded] = field(default_factory=list)
    inserted: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[str, list[tuple[int, str]]] = field(
        default_factory=dict
    )  # method -> (status, reason) to answer next
    offline: bool = False  # the stream ended: list answers carry offlineAt
    page_size: int = 200
    stream_calls: list[StreamCall] = field(default_factory=list)
    refuse_stream: grpc.StatusCode | None = None  # every StreamList call fails with this status
    drop_stream_at: int | None = None  # once a stream has sent this many messages, drop it (once)
    insert_answer_delay_s: float = 0.0  # an inserted message is in the chat this long before its answer
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None
    _grpc: grpc.aio.Server | None = None
    url: str = ""
    grpc_target: str = ""

    async def start(self) -> FakeYouTube:
        app = web.Application()
        app.router.add_get("/youtube/v3/liveBroadcasts", self._broadcasts)
        app.router.add_get("/youtube/v3/liveChat/messages", self._list)
        app.router.add_post("/youtube/v3/liveChat/messages", self._insert)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/"
        self._grpc = grpc.aio.server()
        stream_list_pb2_grpc.add_V3DataLiveChatMessageServiceServicer_to_server(_StreamList(self), self._grpc)
        grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        await self._grpc.start()
        self.grpc_target = f"127.0.0.1:{grpc_port}"
        return self

    def stream_channel(self) -> grpc.aio.Channel:
        """A channel to the fake's streamList, for ``YouTubeAdapter(stream_channel=...)``."""
        return grpc.aio.insecure_channel(self.grpc_target)

    async def close(self) -> None:
        if self._grpc is not None:
            await self._grpc.stop(0)
        if self._runner is not None:
            await self._runner.cleanup()

    def post(self, item: dict[str, Any]) -> None:
        self.chat.append(item)

    def fail_next(self, method: str, reason: str, status: int = 403) -> None:
        self.failures.setdefault(method, []).append((status, reason))

    def calls(self, method: str) -> list[Recorded]:
        return [request for request in self.requests if request.method == method]

    async def _record(self, request: web.Request, method: str) -> None:
        import time

        body = await request.json() if request.can_read_body else None
        self.requests.append(Recorded(method, request.path, dict(request.query), body, time.monotonic()))

    def _failure(self, method: str) -> web.Response | None:
        queued = self.failures.get(method)
        if not queued:
            return None
        status, reason = queued.pop(0)
        return web.json_response(error_body(status, reason, f"The request failed: {reason}."), status=status)

    async def _broadcasts(self, request: web.Request) -> web.Response:
        await self._record(request, "broadcasts.list")
        failed = self._failure("broadcasts.list")
        if failed is not None:
            return failed
        items = []
        if self.live:
            items.append(
                {
                    "kind": "youtube#liveBroadcast",
                    "etag": "etag-broadcast",
                    "id": BROADCAST_ID,
                    "snippet": {
                        "publishedAt": now_iso(),
                        "channelId": OWNER_CHANNEL,
                        "title": "Press briefing",
                        "description": "",
                        "actualStartTime": now_iso(),
                        "liveChatId": CHAT_ID,
                        "isDefaultBroadcast": False,
                    },
                    "status": {"lifeCycleStatus": "live", "privacyStatus": "public", "recordingStatus": "recording"},
                }
            )
        return web.json_response(
            {
                "kind": "youtube#liveBroadcastListResponse",
                "etag": "etag-broadcasts",
                "pageInfo": {"totalResults": len(items), "resultsPerPage": 5},
                "items": items,
            }
        )

    async def _list(self, request: web.Request) -> web.Response:
        await self._record(request, "messages.list")
        failed = self._failure("messages.list")
        if failed is not None:
            return failed
        if request.query.get("liveChatId") != CHAT_ID:
            return web.json_response(error_body(404, "liveChatNotFound", "The live chat was not found."), status=404)
        start = int(request.query.get("pageToken") or 0)
        size = min(self.page_size, int(request.query.get("maxResults") or 500))
        items = self.chat[start : start + size]
        page: dict[str, Any] = {
            "kind": "youtube#liveChatMessageListResponse",
            "etag": f"etag-page-{start}",
            "nextPageToken": str(start + len(items)),
            "pollingIntervalMillis": self.polling_interval_ms,
            "pageInfo": {"totalResults": len(items), "resultsPerPage": len(items)},
            "items": items,
        }
        if self.offline and start + len(items) >= len(self.chat):
            page["offlineAt"] = now_iso()
        return web.json_response(page)

    async def _insert(self, request: web.Request) -> web.Response:
        await self._record(request, "messages.insert")
        failed = self._failure("messages.insert")
        if failed is not None:
            return failed
        body = json.loads(json.dumps(self.requests[-1].body))
        snippet = body["snippet"]
        if snippet.get("liveChatId") != CHAT_ID:
            return web.json_response(error_body(404, "liveChatNotFound", "The live chat was not found."), status=404)
        text = snippet["textMessageDetails"]["messageText"]
        if len(text) > 200:
            return web.json_response(error_body(400, "messageTextInvalid", "The message is too long."), status=400)
        item = text_message(f"sent-{next(self._ids)}", author(OWNER_CHANNEL, "Streamer", owner=True), text)
        self.inserted.append(item)
        self.chat.append(item)  # YouTube shows our own message in the chat too
        await asyncio.sleep(self.insert_answer_delay_s)
        return web.json_response(item)
