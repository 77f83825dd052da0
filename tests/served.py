"""What the benchmarks share when they run against a real model server.

``CappedReplies`` caps reply length (CPU replies of a hundred tokens take many seconds each) and
records every request it passes on, so a bench can analyse the exact prompts the bot sent.
``server_counters`` reads a vLLM server's own Prometheus counters (summed over labels).
"""

from __future__ import annotations

import dataclasses
import json
import urllib.request

from engine.backends.base import Backend, GenerationRequest, TextStream
from tests.vllm_cpu import parse_metrics

__all__ = ["CappedReplies", "server_counters", "server_max_model_len"]


class CappedReplies(Backend):
    """Passes requests on with ``max_tokens`` capped (None: unchanged), keeping each in ``requests``."""

    def __init__(self, inner: Backend, max_tokens: int | None) -> None:
        self.inner = inner
        self.max_tokens = max_tokens
        self.name = inner.name
        self.requests: list[GenerationRequest] = []

    def stream(self, request: GenerationRequest) -> TextStream:
        if self.max_tokens is not None:
            request = dataclasses.replace(request, max_tokens=min(request.max_tokens, self.max_tokens))
        self.requests.append(request)
        return self.inner.stream(request)

    def reads_ahead(self, conversation: str | None) -> bool:
        return self.inner.reads_ahead(conversation)

    async def read_ahead(self, request: GenerationRequest) -> None:
        await self.inner.read_ahead(request)

    async def start(self) -> None:
        await self.inner.start()

    async def aclose(self) -> None:
        await self.inner.aclose()


def _server_root(base_url: str) -> str:
    return base_url.removesuffix("/").removesuffix("/v1")


def server_counters(base_url: str) -> dict[str, float]:
    """``GET /metrics`` of the server behind ``base_url`` (with or without ``/v1``)."""
    with urllib.request.urlopen(f"{_server_root(base_url)}/metrics", timeout=30) as response:
        return parse_metrics(response.read().decode())


def server_max_model_len(base_url: str, model: str) -> int | None:
    """The context window vLLM reports for ``model`` in ``/v1/models`` (None if it does not say)."""
    with urllib.request.urlopen(f"{_server_root(base_url)}/v1/models", timeout=30) as response:
        cards = json.loads(response.read())["data"]
    return next((card.get("max_model_len") for card in cards if card["id"] == model), None)
