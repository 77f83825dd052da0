"""The dashboard's plots (docs/dashboard.md#health): read from the registry /metrics serves."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import pytest

from bot.app import build_manager, close_manager
from bot.dashboard.figures import Figures, quantile
from bot.dashboard.server import DashboardServer, dashboard_tokens
from engine.backends.resilience import with_resilience
from engine.backends.scripted import ScriptedBackend
from engine.control.room import PlatformStatus
from engine.flow.ratelimit import SendBudget
from engine.manager import ConversationManager
from engine.prompting.tokens import TokenCounter
from engine.settings import Settings
from tests.dashboard_browser import open_browser
from tests.on_stage import answer
from tests.test_dashboard import shot
from tests.test_dashboard_security import own


@pytest.fixture
async def resilient(
    make_settings: Callable[..., Settings], scripted: ScriptedBackend, counter: TokenCounter
) -> AsyncIterator[ConversationManager]:
    """A bot whose backend has the circuit breaker, as `costar run` builds it."""
    settings = make_settings()
    manager = await build_manager(settings, backend=with_resilience(scripted, settings), counter=counter)
    yield manager
    await close_manager(manager)


def exported(manager: ConversationManager, name: str) -> float:
    found = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", manager.metrics.render().decode(), re.MULTILINE)
    assert found is not None, name
    return float(found.group(1))


def test_quantiles_interpolate_within_a_bucket_as_prometheus_does() -> None:
    buckets = {0.5: 50.0, 1.0: 90.0, 2.0: 100.0, float("inf"): 100.0}
    assert quantile(0.5, buckets) == pytest.approx(0.5)
    assert quantile(0.95, buckets) == pytest.approx(1.5)
    assert quantile(0.99, {1.0: 0.0, float("inf"): 4.0}) == 1.0, "past the last bound: the bound"
    assert quantile(0.5, {1.0: 0.0, float("inf"): 0.0}) is None


async def test_replies_latency_memory_and_breaker_come_from_the_metrics(
    resilient: ConversationManager, scripted: ScriptedBackend
) -> None:
    for number in range(3):  # fast ones, before the window
        assert await answer(resilient, f"pip, early question {number}?") is not None
    figures = Figures(resilient.metrics)
    figures.sample()
    scripted.delay_s = 0.3
    for number in range(2):
        assert await answer(resilient, f"pip, question {number}?") is not None
    figures.sample()
    series = figures.series()
    first, second = figures.points
    [[_, per_minute]] = series["replies_per_min"]
    assert per_minute == pytest.approx(2 * 60 / (second.at - first.at)), "only the replies since the last sample"
    [[_, p50]] = series["latency_p50"]
    assert 0.25 < p50 <= 0.5, "the last minute's replies only: the slow ones"
    assert series["memory_bytes"][-1][1] == exported(resilient, "costar_memory_bytes") > 0
    assert [state for _, state in series["circuit"]] == [0, 0], "closed"
    breaker = resilient.backend.breaker  # type: ignore[attr-defined]
    for _ in range(breaker.failure_threshold):
        breaker.record_failure()
    figures.sample()
    assert figures.series()["circuit"][-1][1] == 2, "open"
    assert exported(resilient, 'costar_circuit_state{state="open"}') == 1.0


async def test_send_budget_use_per_platform_is_the_busiest_channels(manager: ConversationManager) -> None:
    quiet, busy = SendBudget(20), SendBudget(20)
    for _ in range(5):
        reservation = busy.reserve()
        assert reservation is not None
        reservation.sent()
    budgets = {"a": quiet, "b": busy}
    manager.control.register_platform(
        "twitch",
        PlatformStatus(budgets=lambda: {key: (b.in_window(), b.limit) for key, b in budgets.items()}, queued=lambda: 0),
    )
    figures = Figures(manager.metrics)
    figures.sample()
    assert figures.series()["budget_use"] == {"twitch": [[figures.points[0].at, 0.25]]}


async def test_the_page_draws_each_plot(resilient: ConversationManager) -> None:
    server = DashboardServer(resilient, resilient.settings.dashboard, dashboard_tokens(resilient.settings))
    await server.start()
    try:
        for number in range(3):
            await answer(resilient, f"pip, question {number}?")
        server.figures.sample()
        async with open_browser(height=1100) as browser:
            await browser.log_in(own(server), server.tokens.moderator)
            drawn = await browser.wait_for(
                "const lines = document.querySelectorAll('#figures polyline'); return lines.length >= 3 && lines.length"
            )
            captions = await browser.js(
                "return [...document.querySelectorAll('#figures figcaption')].map((c) => c.textContent)"
            )
            await shot(browser, "dashboard-figures.png")
    finally:
        await server.close()
    assert drawn >= 3
    assert captions[0].startswith("Replies per minute: replies")
    assert "state closed" in captions[2] and "MB" in captions[3]
