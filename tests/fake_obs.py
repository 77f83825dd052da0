"""A local obs-websocket v5 server: Hello, Identify with the SHA-256 challenge, requests and responses.

It speaks JSON or MessagePack, whichever subprotocol the client asks for (``simpleobsws`` asks
for MessagePack), holds a few scenes with their items, and records every request it receives.
Wrong passwords are refused with close code 4009, as OBS does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import msgpack
from aiohttp import WSMsgType, web

__all__ = ["FakeObs"]

AUTHENTICATION_FAILED = 4009
RESOURCE_NOT_FOUND = 600


def expected_auth(password: str, salt: str, challenge: str) -> str:
    secret = base64.b64encode(hashlib.sha256((password + salt).encode()).digest())
    return base64.b64encode(hashlib.sha256(secret + challenge.encode()).digest()).decode()


@dataclass
class FakeObs:
    password: str = "hunter2"
    scenes: dict[str, dict[str, int]] = field(
        default_factory=lambda: {"Gameplay": {"Game capture": 1, "costar overlay": 7}, "Just chatting": {"Camera": 3}}
    )
    program_scene: str = "Gameplay"
    enabled: dict[tuple[str, int], bool] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    identified: int = 0
    refused: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._session)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def request_types(self) -> list[str]:
        return [kind for kind, _ in self.requests]

    async def _session(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(protocols=("obswebsocket.json", "obswebsocket.msgpack"))
        await socket.prepare(request)
        binary = socket.ws_protocol == "obswebsocket.msgpack"

        async def send(op: int, data: dict[str, Any]) -> None:
            message = {"op": op, "d": data}
            if binary:
                await socket.send_bytes(msgpack.packb(message))
            else:
                await socket.send_str(json.dumps(message))

        salt, challenge = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        await send(
            0,
            {"obsWebSocketVersion": "5.5.0", "rpcVersion": 1, "authentication": {"challenge": challenge, "salt": salt}},
        )
        async for frame in socket:
            if frame.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break
            message = msgpack.unpackb(frame.data) if binary else json.loads(frame.data)
            if message["op"] == 1:
                if message["d"].get("authentication") != expected_auth(self.password, salt, challenge):
                    self.refused += 1
                    await socket.close(code=AUTHENTICATION_FAILED, message=b"Authentication failed.")
                    break
                self.identified += 1
                await send(2, {"negotiatedRpcVersion": 1})
            elif message["op"] == 6:
                data = message["d"]
                kind, body = data["requestType"], data.get("requestData") or {}
                self.requests.append((kind, body))
                ok, code, response = self._answer(kind, body)
                status = {"result": ok, "code": code} | ({} if ok else {"comment": f"{kind} failed"})
                await send(
                    7,
                    {
                        "requestType": kind,
                        "requestId": data["requestId"],
                        "requestStatus": status,
                        "responseData": response,
                    },
                )
        return socket

    def _answer(self, kind: str, body: dict[str, Any]) -> tuple[bool, int, dict[str, Any]]:
        if kind == "GetSceneList":
            return (
                True,
                100,
                {
                    "currentProgramSceneName": self.program_scene,
                    "scenes": [{"sceneName": name} for name in self.scenes],
                },
            )
        if kind == "GetCurrentProgramScene":
            return True, 100, {"currentProgramSceneName": self.program_scene}
        if kind == "SetCurrentProgramScene" and body.get("sceneName") in self.scenes:
            self.program_scene = body["sceneName"]
            return True, 100, {}
        if kind == "GetSceneItemId":
            item = self.scenes.get(body.get("sceneName", ""), {}).get(body.get("sourceName", ""))
            if item is not None:
                return True, 100, {"sceneItemId": item}
        if kind == "SetSceneItemEnabled":
            key = (body["sceneName"], body["sceneItemId"])
            if key[1] in self.scenes.get(key[0], {}).values():
                self.enabled[key] = bool(body["sceneItemEnabled"])
                return True, 100, {}
        return False, RESOURCE_NOT_FOUND, {}
