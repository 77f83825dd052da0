"""A circuit breaker and stream timeouts around any backend, so a dead model server costs nothing.

    closed ──N consecutive failures──▶ open ──cool-down over──▶ half-open ──probe ok──▶ closed
                                        ▲                           │
                                        └────────probe fails────────┘

While open every request fails at once with :class:`BackendUnavailable` (the adapters answer with
nothing or the fallback line), so a dead server is not hammered and chat is not kept waiting.
After the cool-down exactly one request is let through as a probe; its outcome closes or reopens
the circuit. Failures are: connection errors, HTTP 5xx, a first chunk slower than
``first_chunk_timeout_s``, a stream silent for ``idle_timeout_s``, a stream cut short, malformed
stream data. A request the server refuses on its merits (context too long, unknown model) is not a
failure of the server and neither opens nor closes the circuit.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable

from engine.backends.base import Backend, GenerationRequest, TextStream
from engine.base.clock import Clock, MonotonicClock
from engine.errors import BackendError, BackendUnavailable, ContextTooLong, ModelNotFound
from engine.observability.redact import SecretRedactor, secret_values
from engine.settings import Settings

__all__ = ["BreakerState", "CircuitBreaker", "ResilientBackend", "with_resilience"]

log = logging.getLogger(__name__)


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive failures; ``counts`` holds opened / closed / failures / rejected / probes."""

    def __init__(self, *, failure_threshold: int, cooldown_s: float, clock: Clock | None = None) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.clock: Clock = clock or MonotonicClock()
        self.counts: Counter[str] = Counter()
        self.consecutive_failures = 0
        self._opened_at: float | None = None
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self.clock.now() - self._opened_at >= self.cooldown_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def before_request(self) -> None:
        """Let the request through, or raise BackendUnavailable at once."""
        state = self.state
        if state is BreakerState.CLOSED:
            return
        if state is BreakerState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            self.counts["probes"] += 1
            return
        self.counts["rejected"] += 1
        assert self._opened_at is not None
        wait = max(0.0, self.cooldown_s - (self.clock.now() - self._opened_at))
        raise BackendUnavailable(f"the model backend is failing; circuit open, next try in {wait:.0f} s")

    def record_success(self) -> None:
        if self._opened_at is not None:
            log.info("Model backend recovered; circuit closed")
            self.counts["closed"] += 1
        self.consecutive_failures = 0
        self._opened_at = None
        self._probe_in_flight = False

    def record_failure(self) -> None:
        self.counts["failures"] += 1
        self.consecutive_failures += 1
        probe_failed = self._probe_in_flight
        self._probe_in_flight = False
        if probe_failed or (self._opened_at is None and self.consecutive_failures >= self.failure_threshold):
            self._opened_at = self.clock.now()
            self.counts["opened"] += 1
            log.warning(
                "Model backend failed %d times in a row; circuit open, failing fast for %g s",
                self.consecutive_failures,
                self.cooldown_s,
            )

    def record_neutral(self) -> None:
        """The request ended without telling whether the server works (cancelled, refused on merit)."""
        self._probe_in_flight = False


class ResilientBackend(Backend):
    def __init__(
        self,
        inner: Backend,
        *,
        breaker: CircuitBreaker,
        first_chunk_timeout_s: float,
        idle_timeout_s: float,
        redact: Callable[[str], str] = str,
    ) -> None:
        self.inner = inner
        self.redact = redact  # library errors can echo a key back; they become our error text
        self.name = inner.name
        self.breaker = breaker
        self.first_chunk_timeout_s = first_chunk_timeout_s
        self.idle_timeout_s = idle_timeout_s

    async def start(self) -> None:
        await self.inner.start()

    async def aclose(self) -> None:
        await self.inner.aclose()

    # Reading ahead and warming are best effort and never answer anyone: no breaker, no deadline.
    @property
    def keeps_prompt_state(self) -> bool:  # type: ignore[override]
        return self.inner.keeps_prompt_state

    def reads_ahead(self, conversation: str | None) -> bool:
        return self.inner.reads_ahead(conversation)

    async def read_ahead(self, request: GenerationRequest) -> None:
        await self.inner.read_ahead(request)

    async def warm(self, request: GenerationRequest) -> None:
        await self.inner.warm(request)

    def stream(self, request: GenerationRequest) -> TextStream:
        result = TextStream()
        return result.attach(self._guarded(request, result))

    async def _guarded(self, request: GenerationRequest, result: TextStream) -> AsyncIterator[str]:
        self.breaker.before_request()
        received = False
        try:
            inner = self.inner.stream(request)
            try:
                async for chunk in self._timed(inner):
                    received = True
                    yield chunk
            finally:
                await inner.aclose()
            result.usage, result.finish_reason = inner.usage, inner.finish_reason
        except GeneratorExit:  # the caller stopped reading (a stop sequence): the server worked
            if received:
                self.breaker.record_success()
            else:
                self.breaker.record_neutral()
            raise
        except (ContextTooLong, ModelNotFound, asyncio.CancelledError):
            self.breaker.record_neutral()
            raise
        except BackendError:
            self.breaker.record_failure()
            raise
        except Exception as exc:
            self.breaker.record_failure()
            # "from None": the original exception may quote a secret, and tracebacks print it.
            raise BackendError(self.redact(f"{self.name} backend failed: {type(exc).__name__}: {exc}")) from None
        self.breaker.record_success()

    async def _timed(self, inner: TextStream) -> AsyncIterator[str]:
        """The inner chunks, with a deadline for the first and for each gap; only text passes."""
        chunks = aiter(inner)
        first, timeout = True, self.first_chunk_timeout_s
        while True:
            try:
                async with asyncio.timeout(timeout):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            except TimeoutError as exc:
                what = "first text" if first else "more text"
                raise BackendUnavailable(f"no {what} from the {self.name} backend within {timeout:g} s") from exc
            if not isinstance(chunk, str):
                raise BackendError(
                    f"malformed stream from the {self.name} backend: got {type(chunk).__name__}, not text"
                )
            first, timeout = False, self.idle_timeout_s
            yield chunk


def with_resilience(backend: Backend, settings: Settings) -> ResilientBackend:
    resilience = settings.resilience
    breaker = CircuitBreaker(failure_threshold=resilience.breaker_failures, cooldown_s=resilience.breaker_cooldown_s)
    return ResilientBackend(
        backend,
        breaker=breaker,
        first_chunk_timeout_s=resilience.first_chunk_timeout_s,
        idle_timeout_s=resilience.idle_timeout_s,
        redact=SecretRedactor(secret_values(settings)).redact,
    )
