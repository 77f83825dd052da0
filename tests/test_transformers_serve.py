"""The OpenAI-compatible backend against a real server nobody here wrote: ``transformers serve``.

The server runs SmolLM2 (the cached safetensors folder) on the CPU, on a free loopback port, for
the whole session; the fixture bounds its start-up and always terminates it.

Observed behaviour of transformers serve (5.x) that differs from vLLM: it ignores
``stream_options`` and puts ``usage`` on the last content chunk (the one with
``finish_reason``) instead of a separate usage-only chunk; the backend reads either.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.backends.base import ChatMessage, GenerationRequest
from engine.backends.openai_backend import OpenAIBackend, RetryPolicy
from engine.errors import BackendError
from tests.transformers_serve import MODEL_NAME, serve_smollm2

pytestmark = [pytest.mark.model, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="session")
def transformers_serve(model_path: Path) -> Iterator[str]:
    """Base URL (``.../v1``) of a transformers serve process serving SmolLM2 on the CPU."""
    with serve_smollm2(model_path) as base_url:
        yield base_url


def short_request(model: str = MODEL_NAME) -> GenerationRequest:
    messages = (
        ChatMessage("system", "You are Pip, a cheerful co-host. Answer in one short sentence."),
        ChatMessage("user", "Say hi to the stream!"),
    )
    return GenerationRequest(messages=messages, max_tokens=8, temperature=0.0, model=model)


def backend_for(base_url: str) -> OpenAIBackend:
    return OpenAIBackend(
        base_url, default_model=MODEL_NAME, timeout_s=120, retry=RetryPolicy(attempts=2, backoff_s=0.1)
    )


async def test_streamed_reply_arrives_in_chunks_with_usage(transformers_serve: str) -> None:
    backend = backend_for(transformers_serve)
    stream = backend.stream(short_request())
    chunks = [chunk async for chunk in stream]
    await backend.aclose()

    assert len(chunks) >= 2, chunks
    assert "".join(chunks).strip()
    assert stream.usage is not None
    assert stream.usage.prompt_tokens and stream.usage.prompt_tokens > 10
    assert stream.usage.completion_tokens is not None and 0 < stream.usage.completion_tokens <= 8
    assert stream.finish_reason in {"length", "stop"}


async def test_non_streamed_reply_arrives_whole_with_usage(transformers_serve: str) -> None:
    backend = backend_for(transformers_serve)
    stream = backend.generate(short_request(), streaming=False)
    chunks = [chunk async for chunk in stream]
    await backend.aclose()

    assert len(chunks) == 1 and chunks[0].strip()
    assert stream.usage is not None and stream.usage.completion_tokens is not None
    assert 0 < stream.usage.completion_tokens <= 8
    assert stream.finish_reason in {"length", "stop"}


async def test_model_the_server_does_not_serve_is_a_backend_error(transformers_serve: str) -> None:
    backend = backend_for(transformers_serve)
    with pytest.raises(BackendError, match="HTTP 400"):
        await backend.complete(short_request(model="someone-else"))
    await backend.aclose()
