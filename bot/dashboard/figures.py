"""The dashboard's plots, read from the same registry /metrics serves.

Every ``SAMPLE_S`` seconds the sampler keeps a copy of every /metrics sample (the last 30
minutes); the page asks for the series and draws them:

- replies per minute (``costar_replies_total``);
- reply latency p50 and p95 over the last minute (``costar_reply_latency_seconds`` buckets,
  interpolated within a bucket as Prometheus' ``histogram_quantile`` does);
- the backend's circuit breaker state (``costar_circuit_state``);
- the memory database's size (``costar_memory_bytes``);
- per platform, the busiest channel's send budget use (``costar_send_budget_use``).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import math
import time
from dataclasses import dataclass
from typing import Any

from engine.observability.metrics import Metrics

__all__ = ["Figures", "quantile"]

SAMPLE_S = 10.0
KEPT = 180  # 30 minutes of samples
LATENCY_WINDOW_S = 60.0
_STATES = {"closed": 0, "half_open": 1, "open": 2}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass(frozen=True, slots=True)
class _Point:
    at: float  # time.time()
    samples: Samples


def _total(samples: Samples, name: str) -> float:
    return sum(value for (sample, _), value in samples.items() if sample == name)


def _buckets(samples: Samples, name: str) -> dict[float, float]:
    """Cumulative count per upper bound, summed over every other label (all platforms)."""
    counts: dict[float, float] = collections.defaultdict(float)
    for (sample, labels), value in samples.items():
        if sample == name:
            counts[float(dict(labels)["le"])] += value
    return dict(counts)


def quantile(share: float, buckets: dict[float, float]) -> float | None:
    """The ``share`` quantile of cumulative ``buckets`` (upper bound -> count); None with no data."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    wanted = share * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= wanted:
            if math.isinf(bound):
                return lower  # beyond the last finite bucket: its bound is all that is known
            return lower + (bound - lower) * (wanted - below) / max(count - below, 1e-12)
        lower, below = bound, count
    return lower


class Figures:
    def __init__(self, metrics: Metrics, *, sample_s: float = SAMPLE_S) -> None:
        self.metrics = metrics
        self.sample_s = sample_s
        self.points: collections.deque[_Point] = collections.deque(maxlen=KEPT)

    def sample(self) -> None:
        self.points.append(_Point(time.time(), self.metrics.samples()))

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.sample_s)

    def series(self) -> dict[str, Any]:
        points = list(self.points)
        pairs = list(itertools.pairwise(points))
        return {
            "replies_per_min": [
                [
                    now.at,
                    60
                    * (_total(now.samples, "costar_replies_total") - _total(then.samples, "costar_replies_total"))
                    / max(now.at - then.at, 1e-9),
                ]
                for then, now in pairs
            ],
            **self._latency(points),
            "circuit": [
                [point.at, self._state(point.samples)] for point in points if self._state(point.samples) is not None
            ],
            "memory_bytes": [[point.at, _total(point.samples, "costar_memory_bytes")] for point in points],
            "budget_use": self._budget_use(points),
        }

    def _latency(self, points: list[_Point]) -> dict[str, list[list[float]]]:
        found: dict[str, list[list[float]]] = {"latency_p50": [], "latency_p95": []}
        for index, now in enumerate(points):
            then = next((p for p in points[:index] if now.at - p.at <= LATENCY_WINDOW_S), None)
            if then is None or then is now:
                continue
            recent, before = (_buckets(p.samples, "costar_reply_latency_seconds_bucket") for p in (now, then))
            window = {bound: count - before.get(bound, 0.0) for bound, count in recent.items()}
            for share, key in ((0.5, "latency_p50"), (0.95, "latency_p95")):
                value = quantile(share, window)
                if value is not None:
                    found[key].append([now.at, value])
        return found

    @staticmethod
    def _state(samples: Samples) -> int | None:
        for (name, labels), value in samples.items():
            if name == "costar_circuit_state" and value >= 1:
                return _STATES.get(dict(labels)["state"])
        return None

    @staticmethod
    def _budget_use(points: list[_Point]) -> dict[str, list[list[float]]]:
        use: dict[str, list[list[float]]] = collections.defaultdict(list)
        for point in points:
            for (name, labels), value in point.samples.items():
                if name == "costar_send_budget_use":
                    use[dict(labels)["platform"]].append([point.at, value])
        return dict(use)
