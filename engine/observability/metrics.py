"""Prometheus metrics for the bot, served on ``/metrics`` when COSTAR_METRICS_PORT is set.

Each :class:`Metrics` owns its registry, so tests and several managers in one process never
collide. Names sit next to vLLM's own (``vllm:time_to_first_token_seconds``,
``vllm:num_requests_waiting``): ours measure what a viewer sees, theirs what the GPU does.

    costar_replies_total{platform,persona}            replies sent
    costar_time_to_first_chunk_seconds{platform}      event in -> first text chunk out
    costar_reply_latency_seconds{platform}            event in -> reply finished
    costar_queue_depth                                replies waiting for a generation slot
    costar_generations_in_flight                      replies generating right now
    costar_dropped_messages_total{reason}             lines not answered: the scheduler's outcomes
                                                      (stale, duplicate, copypasta, queue_full, ignored,
                                                      not_sent, failed), the manager's empty_reply and
                                                      backend_error
    costar_time_to_first_audio_seconds{platform}      chat line stored -> first spoken sentence ready
    costar_backend_errors_total{kind}                 replies lost to a backend error
    costar_backend_retries_total{kind}                backend errors we retried past
    costar_moderation_actions_total{rule,action}      moderation findings acted on (engine.moderation.moderator)
    costar_circuit_events_total{event}                the backend circuit breaker's opened / closed /
                                                      failures / rejected / probes
    costar_stream_events_total{platform,kind}         stream events stored (follow, raid, gift_bomb, ...;
                                                      repeat deliveries not counted)
    costar_stream_reactions_total{platform,kind}      what the character said unprompted, by kind: event
                                                      reactions, proactive talk, timers, commands
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from threading import Thread
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["Metrics", "MetricsServer", "ReplyTimer"]

# Chat replies take from a fraction of a second (vLLM, short reply) to tens of seconds (CPU model).
# engine.flow.scheduler.Outcome values that are not a drop (it is a StrEnum, so plain strings compare).
_ANSWERED_OR_WAITING = frozenset({"queued", "replied"})
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)


@dataclass(slots=True)
class ReplyTimer:
    """Times one reply from the moment its event arrived; feed it to :meth:`Metrics.finish_reply`."""

    platform: str
    started: float = field(default_factory=time.perf_counter)
    first_chunk_at: float | None = None

    def first_chunk(self) -> None:
        if self.first_chunk_at is None:
            self.first_chunk_at = time.perf_counter()


class _CountsView(Collector):
    """Exports a counter another component keeps (a ``collections.Counter``) at scrape time, so
    that component needs no Prometheus code of its own."""

    def __init__(
        self, name: str, documentation: str, labels: list[str], read: Callable[[], Mapping[Any, float]]
    ) -> None:
        self.name, self.documentation, self.labels, self.read = name, documentation, labels, read

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for key, value in sorted(self.read().items()):
            family.add_metric([str(part) for part in (key if isinstance(key, tuple) else (key,))], value)
        yield family


class _GaugesView(Collector):
    """Exports values another component knows (a state, a file's size) at scrape time, as a gauge."""

    def __init__(
        self, name: str, documentation: str, labels: list[str], read: Callable[[], Mapping[Any, float]]
    ) -> None:
        self.name, self.documentation, self.labels, self.read = name, documentation, labels, read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        for key, value in sorted(self.read().items()):
            family.add_metric([str(part) for part in (key if isinstance(key, tuple) else (key,))], value)
        yield family


@dataclass(slots=True)
class MetricsServer:
    server: WSGIServer
    thread: Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        reg = self.registry
        self.replies = Counter("costar_replies", "Replies sent", ["platform", "persona"], registry=reg)
        self.time_to_first_chunk = Histogram(
            "costar_time_to_first_chunk_seconds",
            "Event received to first reply text",
            ["platform"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.reply_latency = Histogram(
            "costar_reply_latency_seconds",
            "Event received to reply finished",
            ["platform"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.time_to_first_audio = Histogram(
            "costar_time_to_first_audio_seconds",
            "Chat line stored to the first sentence of the reply's audio ready",
            ["platform"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.queue_depth = Gauge("costar_queue_depth", "Replies waiting for a generation slot", registry=reg)
        self.in_flight = Gauge("costar_generations_in_flight", "Replies generating now", registry=reg)
        self.dropped = Counter("costar_dropped_messages", "Lines not answered, by reason", ["reason"], registry=reg)
        self.backend_errors = Counter("costar_backend_errors", "Replies lost to backend errors", ["kind"], registry=reg)
        self.backend_retries = Counter("costar_backend_retries", "Backend errors retried past", ["kind"], registry=reg)
        self.embed_backlog = Gauge(
            "costar_embeddings_backlog", "Chat lines waiting to be embedded for recall by meaning", registry=reg
        )
        self.embed_dropped = Counter(
            "costar_embeddings_dropped", "Chat lines not embedded, by reason (backlog, error)", ["reason"], registry=reg
        )
        self.stream_events = Counter(
            "costar_stream_events", "Stream events stored, by kind", ["platform", "kind"], registry=reg
        )
        self.stream_reactions = Counter(
            "costar_stream_reactions",
            "Lines said to stream events, timers and silence",
            ["platform", "kind"],
            registry=reg,
        )

    def start_reply(self, platform: str) -> ReplyTimer:
        return ReplyTimer(platform=platform)

    def finish_reply(self, timer: ReplyTimer, persona: str) -> None:
        now = time.perf_counter()
        self.replies.labels(timer.platform, persona).inc()
        self.reply_latency.labels(timer.platform).observe(now - timer.started)
        if timer.first_chunk_at is not None:
            self.time_to_first_chunk.labels(timer.platform).observe(timer.first_chunk_at - timer.started)

    def first_audio(self, platform: str, seconds: float) -> None:
        self.time_to_first_audio.labels(platform).observe(seconds)

    def drop(self, reason: str) -> None:
        self.dropped.labels(reason).inc()

    def scheduler_outcome(self, event: object, outcome: str) -> None:
        """An ``engine.flow.scheduler`` outcome listener: every line that ends unanswered counts as dropped."""
        if outcome not in _ANSWERED_OR_WAITING:
            self.drop(str(outcome))

    def stream_event_seen(self, platform: str, kind: str) -> None:
        self.stream_events.labels(platform, str(kind)).inc()

    def stream_reaction(self, platform: str, kind: str) -> None:
        self.stream_reactions.labels(platform, str(kind)).inc()

    def backend_error(self, error: BaseException) -> None:
        self.backend_errors.labels(type(error).__name__).inc()

    def backend_retry(self, kind: str) -> None:
        self.backend_retries.labels(kind).inc()

    def waiting_for_slot(self) -> AbstractContextManager[None]:
        """Counts the caller in ``costar_queue_depth`` while it waits for the concurrency limit."""
        return self.queue_depth.track_inprogress()

    def generating(self) -> AbstractContextManager[None]:
        return self.in_flight.track_inprogress()

    def watch_counts(
        self, name: str, documentation: str, labels: list[str], read: Callable[[], Mapping[Any, float]]
    ) -> None:
        """Export ``read()`` (keys are label values, or tuples of them) as counter ``name``."""
        self.registry.register(_CountsView(name, documentation, labels, read))

    def watch_gauges(
        self, name: str, documentation: str, labels: list[str], read: Callable[[], Mapping[Any, float]]
    ) -> None:
        """Export ``read()`` (keys are label values, or tuples of them) as gauge ``name``."""
        self.registry.register(_GaugesView(name, documentation, labels, read))

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample /metrics shows, keyed by name and labels (the dashboard's figures read these)."""
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): float(sample.value)
            for family in self.registry.collect()
            for sample in family.samples
        }

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def serve(self, port: int, host: str = "127.0.0.1") -> MetricsServer:
        """Serve ``/metrics`` from a daemon thread (prometheus_client's own server); port 0 picks one."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        return MetricsServer(server=server, thread=thread)
