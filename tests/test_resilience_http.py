"""HTTP-level faults: the OpenAI backend against the local fake vLLM, behind the circuit breaker."""

from __future__ import annotations

import socket

import pytest

from engine.backends.base import ChatMessage, GenerationRequest
from engine.backends.openai_backend import OpenAIBackend, RetryPolicy
from engine.backends.resilience import BreakerState, CircuitBreaker, ResilientBackend
from engine.base.clock import ManualClock
from engine.errors import BackendError, BackendUnavailable
from tests.fake_vllm import FakeVllm, Fault

BASE = "base-model"
REQUEST = GenerationRequest(messages=(ChatMessage("user", "ann: hi"),), max_tokens=16, model=BASE)
NO_RETRY = RetryPolicy(attempts=1, backoff_s=0.01, max_backoff_s=0.01)


def guarded(base_url: str, clock: ManualClock, *, first_chunk_timeout_s: float = 5.0) -> ResilientBackend:
    inner = OpenAIBackend(base_url, default_model=BASE, retry=NO_RETRY, timeout_s=10)
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=30.0, clock=clock)
    return ResilientBackend(inner, breaker=breaker, first_chunk_timeout_s=first_chunk_timeout_s, idle_timeout_s=5.0)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_server_that_is_down_opens_the_circuit_and_is_not_hammered() -> None:
    backend = guarded(f"http://127.0.0.1:{closed_port()}/v1", ManualClock(1000.0))
    try:
        for _ in range(2):
            with pytest.raises(BackendError):
                await backend.complete(REQUEST)
        with pytest.raises(BackendUnavailable, match="circuit open"):
            await backend.complete(REQUEST)
        assert backend.breaker.counts["rejected"] == 1
    finally:
        await backend.aclose()


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=500),
        Fault(status=503),
        Fault(midstream_after=2),  # vLLM's in-band error after HTTP 200: the stream is cut mid-way
        Fault(midstream_after=1, body='{"choices": [{"delta": {"content": "unterminated'),  # malformed SSE data
    ],
    ids=["http-500", "http-503", "cut-mid-stream", "malformed-sse"],
)
async def test_http_faults_fail_the_reply_and_the_circuit_recovers_by_itself(fault: Fault) -> None:
    clock = ManualClock(1000.0)
    async with FakeVllm(BASE) as server:
        backend = guarded(server.base_url, clock)
        try:
            server.fail_next(fault, fault)
            for _ in range(2):
                with pytest.raises(BackendError):
                    await backend.complete(REQUEST)
            assert backend.breaker.state is BreakerState.OPEN
            calls = len(server.completions())
            with pytest.raises(BackendUnavailable):
                await backend.complete(REQUEST)
            assert len(server.completions()) == calls  # failing fast: no request reached the server
            await clock.advance(30.0)
            assert await backend.complete(REQUEST) == "Hello there, friend of the stream!"
            assert backend.breaker.state is BreakerState.CLOSED  # type: ignore[comparison-overlap]  # changed by the await
        finally:
            await backend.aclose()


async def test_a_server_slower_than_the_first_chunk_timeout_is_a_failure() -> None:
    async with FakeVllm(BASE, delay_s=3.0) as server:
        backend = guarded(server.base_url, ManualClock(1000.0), first_chunk_timeout_s=0.2)
        try:
            with pytest.raises(BackendUnavailable, match="no first text"):
                await backend.complete(REQUEST)
            assert backend.breaker.counts["failures"] == 1
        finally:
            await backend.aclose()
