"""A small aiohttp fake of vLLM's OpenAI-compatible LoRA surface, for tests and benchmarks.

It serves what costar uses, in vLLM's shapes (see docs/serving.md): ``GET /v1/models`` (base card plus
adapter cards with ``parent``/``root``), ``POST /v1/chat/completions`` streamed (SSE, role chunk,
content chunks, usage-only chunk, ``[DONE]``) or not, ``POST /v1/load_lora_adapter``,
``POST /v1/embeddings`` (a fixed, not normalised vector per input, ``embedding_dimensions`` wide) and
``GET /health``. Unknown models get vLLM's nested 404; prompts over ``max_prompt_chars`` get the
400 context error with ``param: input_tokens``. ``fail_next`` scripts faults for the next
completion requests. Every request is recorded in ``requests``.

    async with FakeVllm(adapters={"pip-lora": "/adapters/pip"}) as fake:
        backend = OpenAIBackend(fake.base_url, default_model=fake.base_model)
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.loopback import serve_on_loopback

__all__ = ["FakeVllm", "Fault", "RecordedRequest", "flat_error", "nested_error"]


def nested_error(message: str, type_: str, code: int, param: str | None = None) -> dict[str, Any]:
    """The current vLLM error body: ``{"error": {...}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def flat_error(message: str, type_: str, code: int, param: str | None = None) -> dict[str, Any]:
    """The older vLLM error body, fields at the top level."""
    return {"object": "error", "message": message, "type": type_, "param": param, "code": code}


@dataclass(frozen=True, slots=True)
class Fault:
    """What the next completion request gets instead of a normal reply.

    ``status`` + ``body``: an HTTP error before anything streams. ``midstream_after``: HTTP 200,
    that many content chunks, then ``body`` as an in-band ``data:`` event (vLLM's way).
    """

    status: int = 503
    body: dict[str, Any] | str | None = None
    midstream_after: int | None = None


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    body: dict[str, Any] | None
    at: float = field(default_factory=time.monotonic)


class FakeVllm:
    def __init__(
        self,
        base_model: str = "base-model",
        adapters: dict[str, str] | None = None,
        *,
        runtime_loading: bool = False,
        reply: str | Callable[[dict[str, Any]], str] = "Hello there, friend of the stream!",
        delay_s: float = 0.0,
        max_prompt_chars: int | None = None,
        max_model_len: int = 2048,
        embedding_dimensions: int = 8,
    ) -> None:
        self.base_model = base_model
        self.adapters = dict(adapters or {})
        self.runtime_loading = runtime_loading
        self.reply = reply
        self.delay_s = delay_s
        self.max_prompt_chars = max_prompt_chars
        self.max_model_len = max_model_len
        self.embedding_dimensions = embedding_dimensions
        self.requests: list[RecordedRequest] = []
        self.faults: deque[Fault] = deque()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/load_lora_adapter", self._load_adapter)
        app.router.add_post("/v1/embeddings", self._embeddings)
        return app

    async def start(self) -> FakeVllm:
        self._runner, self.port = await serve_on_loopback(self.app())
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeVllm:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def fail_next(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def completions(self) -> list[dict[str, Any]]:
        """Bodies of every chat completion request received, in order."""
        return [r.body or {} for r in self.requests if r.path == "/v1/chat/completions"]

    # -- handlers -------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> dict[str, Any] | None:
        body = await request.json() if request.can_read_body else None
        self.requests.append(RecordedRequest(request.method, request.path, body))
        return body

    async def _health(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(status=200)

    async def _models(self, request: web.Request) -> web.Response:
        await self._record(request)
        created = int(time.time())
        base = {
            "id": self.base_model,
            "object": "model",
            "created": created,
            "owned_by": "vllm",
            "root": self.base_model,
            "parent": None,
            "max_model_len": self.max_model_len,
        }
        cards = [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "vllm",
                "root": path,
                "parent": self.base_model,
                "max_model_len": None,
            }
            for name, path in self.adapters.items()
        ]
        return web.json_response({"object": "list", "data": [base, *cards]})

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await self._record(request) or {}
        texts = body.get("input") or []
        texts = [texts] if isinstance(texts, str) else texts
        data = [
            {
                "object": "embedding",
                "index": index,
                # Any fixed vector will do: a few components from the text's letters, not unit length.
                "embedding": [
                    float(1 + (sum(map(ord, text)) * (k + 1)) % 17) for k in range(self.embedding_dimensions)
                ],
            }
            for index, text in enumerate(texts)
        ]
        usage = {"prompt_tokens": sum(len(text.split()) for text in texts), "total_tokens": 0}
        return web.json_response({"object": "list", "data": data, "model": body.get("model"), "usage": usage})

    async def _load_adapter(self, request: web.Request) -> web.Response:
        body = await self._record(request) or {}
        if not self.runtime_loading:  # the route only exists with VLLM_ALLOW_RUNTIME_LORA_UPDATING
            return web.json_response({"detail": "Not Found"}, status=404)
        name, path = body.get("lora_name", ""), body.get("lora_path", "")
        if name in self.adapters:
            message = f"The lora adapter '{name}' has already been loaded."
            return web.json_response(nested_error(message, "InvalidUserInput", 400), status=400)
        self.adapters[name] = path
        return web.Response(text=f"Success: LoRA adapter '{name}' added successfully.")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request) or {}
        fault = self.faults.popleft() if self.faults else None
        if fault is not None and fault.midstream_after is None:
            return self._error_response(fault)
        refusal = self._refusal(body)
        if refusal is not None:
            return refusal
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        text = self.reply(body) if callable(self.reply) else self.reply
        if body.get("stream"):
            return await self._stream(request, body, text, fault)
        return web.json_response(self._completion(body, text))

    def _error_response(self, fault: Fault) -> web.Response:
        if isinstance(fault.body, str):
            return web.Response(status=fault.status, text=fault.body)
        return web.json_response(
            fault.body or nested_error("Service Unavailable", "ServiceUnavailableError", fault.status),
            status=fault.status,
        )

    def _refusal(self, body: dict[str, Any]) -> web.Response | None:
        model = body.get("model")
        if model != self.base_model and model not in self.adapters:
            error = nested_error(f"The model `{model}` does not exist.", "NotFoundError", 404, "model")
            return web.json_response(error, status=404)
        prompt_chars = sum(len(m.get("content") or "") for m in body.get("messages", []))
        if self.max_prompt_chars is not None and prompt_chars > self.max_prompt_chars:
            message = (
                f"This model's maximum context length is {self.max_model_len} tokens. However, you "
                f"requested {prompt_chars} tokens in the messages. Please reduce the length of the messages."
            )
            return web.json_response(nested_error(message, "BadRequestError", 400, "input_tokens"), status=400)
        if not isinstance(body.get("max_tokens"), int):
            return web.json_response(nested_error("max_tokens is required here", "BadRequestError", 400), status=400)
        return None

    @staticmethod
    def _usage(body: dict[str, Any], text: str) -> dict[str, int]:
        prompt = sum(len(m.get("content") or "") for m in body.get("messages", [])) // 4
        completion = len(text.split())
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _completion(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "usage": self._usage(body, text),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        }

    async def _stream(
        self, request: web.Request, body: dict[str, Any], text: str, fault: Fault | None
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        async def send(payload: dict[str, Any] | str) -> None:
            data = payload if isinstance(payload, str) else json.dumps(payload)
            await response.write(f"data: {data}\n\n".encode())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": body["model"],
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        await send(chunk({"role": "assistant", "content": ""}))
        words = text.split(" ")
        for index, word in enumerate(words):
            if fault is not None and index == fault.midstream_after:
                await send(fault.body or nested_error("engine died", "InternalServerError", 500))
                await response.write_eof()
                return response
            await send(chunk({"content": word if index == 0 else f" {word}"}))
        await send(chunk({}, finish="stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            await send(
                {
                    "id": chunk_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": body["model"],
                    "choices": [],
                    "usage": self._usage(body, text),
                }
            )
        await send("[DONE]")
        await response.write_eof()
        return response
