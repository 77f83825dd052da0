"""The live chat over ``liveChatMessages.streamList``: a gRPC server stream of list pages.

YouTube pushes each new page down one open call (service ``youtube.api.v3.V3DataLiveChatMessageService``,
method ``StreamList``, host ``youtube.googleapis.com:443``) instead of being polled for it. Every response
has the shape of a ``liveChatMessages.list`` page; :func:`page_of` turns it into that page's JSON form, so
a streamed page and a polled page go down the same path in the adapter. Each page carries a
``nextPageToken``: a new call given the last one resumes where a dropped stream stopped.

The request is authorised with the stored OAuth token as a ``Bearer`` header, refreshed before each call
when it has expired (a call lasts as long as the server keeps it open; the token is checked when it
opens). The messages are generated from ``stream_list.proto`` (see there how to regenerate them).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import json_format

from bot.youtube import stream_list_pb2, stream_list_pb2_grpc

__all__ = ["STREAM_HOST", "ChatStream", "message_of", "page_of", "secure_channel"]

STREAM_HOST = "youtube.googleapis.com:443"
_PARTS = ["id", "snippet", "authorDetails"]


def secure_channel() -> grpc.aio.Channel:
    """A TLS channel to YouTube's gRPC endpoint (the token goes with each call)."""
    return grpc.aio.secure_channel(STREAM_HOST, grpc.ssl_channel_credentials())


def _rest_type(name: str) -> str:
    """``TEXT_MESSAGE_EVENT`` (the proto's enum) -> ``textMessageEvent`` (the REST API's ``snippet.type``)."""
    first, *rest = name.lower().split("_")
    return first + "".join(word.capitalize() for word in rest)


def _proto_type(name: str) -> str:
    """``textMessageEvent`` -> ``TEXT_MESSAGE_EVENT``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def page_of(response: stream_list_pb2.LiveChatMessageListResponse) -> dict[str, Any]:
    """A streamed response as the JSON page ``liveChatMessages.list`` returns: camelCase keys, string types."""
    page: dict[str, Any] = json_format.MessageToDict(response)
    for item in page.get("items", []):
        snippet = item.get("snippet") or {}
        if "type" in snippet:
            snippet["type"] = _rest_type(snippet["type"])
    return page


def message_of(item: dict[str, Any]) -> stream_list_pb2.LiveChatMessage:
    """A ``liveChatMessage`` in the REST API's JSON shape as the proto message (fields costar skips dropped)."""
    item = {**item, "snippet": {**item.get("snippet", {})}}
    kind = item["snippet"].get("type")
    if kind:
        proto_kind = _proto_type(kind)
        known = stream_list_pb2.LiveChatMessageSnippet.TypeWrapper.Type.keys()
        item["snippet"]["type"] = proto_kind if proto_kind in known else "INVALID_TYPE"
    return json_format.ParseDict(item, stream_list_pb2.LiveChatMessage(), ignore_unknown_fields=True)


class ChatStream:
    """One chat's ``StreamList`` calls on one channel; :meth:`stop` ends the call in progress."""

    def __init__(self, chat_id: str, channel: grpc.aio.Channel, bearer: Callable[[], Awaitable[str]]) -> None:
        self.chat_id = chat_id
        self.channel = channel
        self._stub = stream_list_pb2_grpc.V3DataLiveChatMessageServiceStub(channel)
        self._bearer = bearer
        self._call: Any = None
        self._stopping = False

    async def pages(self, page_token: str | None) -> AsyncIterator[dict[str, Any]]:
        """Pages from ``page_token`` on (None: the recent chat first) until the server ends the call.

        Raises ``grpc.aio.AioRpcError`` when the call fails; returns quietly after :meth:`stop`."""
        request = stream_list_pb2.LiveChatMessageListRequest(live_chat_id=self.chat_id, part=_PARTS)
        if page_token:
            request.page_token = page_token
        metadata = (("authorization", f"Bearer {await self._bearer()}"),)
        self._call = self._stub.StreamList(request, metadata=metadata)
        try:
            while not self._stopping:
                try:
                    response = await self._call.read()
                except asyncio.CancelledError:
                    if self._stopping:  # stop() cancelled the call, not someone cancelling this task
                        return
                    raise
                if response is grpc.aio.EOF:
                    return
                yield page_of(response)
        finally:
            self._call.cancel()

    def stop(self) -> None:
        self._stopping = True
        if self._call is not None:
            self._call.cancel()

    async def close(self) -> None:
        self.stop()
        await self.channel.close()
