"""Faults: a dead, slow, erroring, cut-off or garbled backend never takes the bot down with it."""

from __future__ import annotations

import asyncio
import io

import pytest

from bot.app import build_manager, close_manager
from bot.console.adapter import ConsoleAdapter
from engine.backends.base import GenerationRequest
from engine.backends.resilience import BreakerState, CircuitBreaker, ResilientBackend
from engine.base.clock import ManualClock
from engine.errors import BackendError, BackendUnavailable, ContextTooLong
from engine.events import ChatEvent
from tests.fault_backends import FaultyBackend

REQUEST = GenerationRequest(messages=(), max_tokens=16)


def resilient(
    faults: list[str], clock: ManualClock, *, failures: int = 3, cooldown_s: float = 30.0
) -> ResilientBackend:
    breaker = CircuitBreaker(failure_threshold=failures, cooldown_s=cooldown_s, clock=clock)
    return ResilientBackend(
        FaultyBackend(faults, slow_s=5.0), breaker=breaker, first_chunk_timeout_s=0.05, idle_timeout_s=0.05
    )


async def ask(backend: ResilientBackend) -> str:
    return await backend.complete(REQUEST)


async def fail(backend: ResilientBackend, times: int = 3) -> None:
    for _ in range(times):
        with pytest.raises(BackendError):
            await ask(backend)


@pytest.mark.parametrize("fault", ["down", "http500", "slow", "stall", "cut", "malformed"])
async def test_every_fault_becomes_a_backend_error_and_counts_as_a_failure(fault: str) -> None:
    backend = resilient([fault], ManualClock(1000.0))
    with pytest.raises(BackendError):
        await ask(backend)
    assert backend.breaker.counts["failures"] == 1
    assert await ask(backend) == "All good here, chat!"
    assert backend.breaker.consecutive_failures == 0


async def test_timeouts_name_what_was_late() -> None:
    backend = resilient(["slow", "stall"], ManualClock(1000.0))
    with pytest.raises(BackendUnavailable, match=r"no first text from the faulty backend within 0\.05 s"):
        await ask(backend)
    with pytest.raises(BackendUnavailable, match="no more text"):
        await ask(backend)


async def test_circuit_opens_after_consecutive_failures_and_then_fails_fast_without_calling_the_backend() -> None:
    clock = ManualClock(1000.0)
    backend = resilient(["down", "http500", "cut"], clock)
    await fail(backend)
    assert backend.breaker.state is BreakerState.OPEN
    for _ in range(5):
        with pytest.raises(BackendUnavailable, match="circuit open"):
            await ask(backend)
    inner = backend.inner
    assert isinstance(inner, FaultyBackend) and inner.calls == 3
    assert backend.breaker.counts["rejected"] == 5 and backend.breaker.counts["opened"] == 1


async def test_after_the_cooldown_one_probe_goes_through_and_success_closes_the_circuit() -> None:
    clock = ManualClock(1000.0)
    backend = resilient(["down"] * 3, clock)
    await fail(backend)
    await clock.advance(29.0)
    with pytest.raises(BackendUnavailable, match="next try in 1 s"):
        await ask(backend)
    await clock.advance(1.0)
    assert backend.breaker.state is BreakerState.HALF_OPEN
    assert await ask(backend) == "All good here, chat!"
    assert backend.breaker.state is BreakerState.CLOSED and backend.breaker.counts["closed"] == 1  # type: ignore[comparison-overlap]  # changed by the await


async def test_a_failed_probe_reopens_the_circuit_for_another_cooldown() -> None:
    clock = ManualClock(1000.0)
    backend = resilient(["down"] * 4, clock, failures=3)
    await fail(backend)
    await clock.advance(30.0)
    with pytest.raises(BackendError, match="ConnectionRefusedError"):
        await ask(backend)  # the probe, and it fails
    assert backend.breaker.state is BreakerState.OPEN
    with pytest.raises(BackendUnavailable, match="circuit open"):
        await ask(backend)
    await clock.advance(30.0)
    assert await ask(backend) == "All good here, chat!"


async def test_while_half_open_only_one_probe_reaches_the_backend() -> None:
    clock = ManualClock(1000.0)
    backend = resilient(["down"] * 3, clock)
    await fail(backend)
    await clock.advance(30.0)
    results = await asyncio.gather(*(ask(backend) for _ in range(4)), return_exceptions=True)
    assert sum(result == "All good here, chat!" for result in results) == 1
    assert sum(isinstance(result, BackendUnavailable) for result in results) == 3
    inner = backend.inner
    assert isinstance(inner, FaultyBackend) and inner.calls == 4  # 3 failures + 1 probe


async def test_a_prompt_refused_as_too_long_is_not_held_against_the_server() -> None:
    backend = resilient(["too_long"] * 5, ManualClock(1000.0), failures=2)
    for _ in range(5):
        with pytest.raises(ContextTooLong):
            await ask(backend)
    assert backend.breaker.state is BreakerState.CLOSED and backend.breaker.counts["failures"] == 0


async def test_a_reader_that_stops_early_at_a_stop_sequence_counts_as_success() -> None:
    backend = resilient(["down", "down"], ManualClock(1000.0))
    await fail(backend, 2)
    stream = backend.stream(REQUEST)
    async for _chunk in stream:
        break
    await stream.aclose()
    assert backend.breaker.consecutive_failures == 0


def _line(number: int) -> ChatEvent:
    return ChatEvent(
        platform="twitch",
        channel_id="stream",
        author_id="ann",
        author_name="ann",
        text=f"Pip, question number {number}?",
        message_id=f"m{number}",
        addresses_bot=True,
    )


async def test_the_bot_keeps_every_line_through_an_outage_and_recovers_by_itself(make_settings, counter) -> None:
    clock = ManualClock(1000.0)
    backend = resilient(["down", "cut", "http500"], clock)
    manager = await build_manager(make_settings(), backend=backend, counter=counter)
    try:
        outcomes = []
        for number in range(1, 6):
            if number == 5:
                await clock.advance(30.0)
            heard = await manager.hear(_line(number))
            try:
                outcomes.append((await manager.reply(heard)).text)  # type: ignore[union-attr]
            except BackendError as exc:
                outcomes.append(type(exc).__name__)
        assert outcomes == [
            "BackendError",
            "BackendError",
            "BackendUnavailable",
            "BackendUnavailable",
            "All good here, chat!",
        ]
        assert await manager.memory.count_messages() == 5 + 1  # every viewer line, and only the one real reply
    finally:
        await close_manager(manager)


class _Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


async def test_console_stays_up_and_says_the_fallback_once_while_the_backend_is_down(
    make_settings, counter, capsys
) -> None:
    settings = make_settings(prompt={"fallback_reply": "/me lagged, ask again?"})
    backend = resilient(["down"] * 10, ManualClock(1000.0))
    manager = await build_manager(settings, backend=backend, counter=counter)
    out = _Pipe()
    try:
        await ConsoleAdapter(settings, manager, stdin=_Pipe("one\ntwo\nthree\nfour\n"), stdout=out).start()
        # the console platform has no command-prefix rule, so '/me' survives there; twitch strips it
        assert out.getvalue().splitlines() == ["Pip: /me lagged, ask again?"]
        assert await manager.memory.count_messages() == 4
        twitch_fallback = await manager.fallback_reply(_line(9))
        assert twitch_fallback == "me lagged, ask again?"
        assert await manager.fallback_reply(_line(10)) is None  # once per channel per cooldown
    finally:
        await close_manager(manager)
    assert capsys.readouterr().err.count("could not answer") == 4
