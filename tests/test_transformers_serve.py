"""The OpenAI-compatible backend against a real server nobody here wrote: ``transformers serve``.

The server runs SmolLM2 (the cached safetensors folder) on the CPU, on a free loopback port, for
the whole session; the fixture bounds its start-up and always terminates it.

Observed behaviour of transformers serve (5.x) that differs from vLLM: it ignores
``stream_options`` and puts ``usage`` on the last content chunk (the one with
``finish_reason``) instead of a separate usage-only chunk; the backend reads either.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.backends.base import ChatMessage, GenerationRequest
from engine.backends.openai_backend import OpenAIBackend, RetryPolicy
from engine.errors import BackendError
from engine.model_store import ensure_default_model

pytestmark = [pytest.mark.model, pytest.mark.slow, pytest.mark.timeout(300)]

MODEL_NAME = "smollm2"  # transformers serve refuses absolute paths: the folder is named bare, from its parent
START_TIMEOUT_S = 180.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"transformers serve exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"transformers serve not healthy after {START_TIMEOUT_S:g}s:\n{log_path.read_text()[-3000:]}")


def serve_command(port: int) -> list[str]:
    return [sys.executable, "-m", "transformers.cli.transformers", "serve", MODEL_NAME,
            "--device", "cpu", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]


@pytest.fixture(scope="session")
def transformers_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (``.../v1``) of a transformers serve process serving SmolLM2 on the CPU."""
    model_dir = ensure_default_model(Path(os.environ.get("COSTAR_CACHE_DIR", Path.home() / ".cache" / "costar")))
    workdir = tmp_path_factory.mktemp("transformers-serve")
    (workdir / MODEL_NAME).symlink_to(model_dir, target_is_directory=True)
    (workdir / "hub").mkdir()  # an empty hub cache: /v1/models scans it and fails when it is missing
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(workdir / "hub"), "OMP_NUM_THREADS": "1"}
    port = _free_port()
    log_path = workdir / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(serve_command(port), cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_until_healthy(f"http://127.0.0.1:{port}/health", process, log_path)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def short_request(model: str = MODEL_NAME) -> GenerationRequest:
    messages = (ChatMessage("system", "You are Pip, a cheerful co-host. Answer in one short sentence."),
                ChatMessage("user", "Say hi to the stream!"))
    return GenerationRequest(messages=messages, max_tokens=8, temperature=0.0, model=model)


def backend_for(base_url: str) -> OpenAIBackend:
    return OpenAIBackend(base_url, default_model=MODEL_NAME, timeout_s=120, retry=RetryPolicy(attempts=2, backoff_s=0.1))


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
