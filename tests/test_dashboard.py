"""The dashboard's live view (docs/dashboard.md): what the engine tells it, and the page in a real browser.

Browser tests drive Debian's headless Chromium with Selenium (tests/dashboard_browser.py).
Set DASHBOARD_SHOTS=docs to have them refresh the screenshots in docs/dashboard.md.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.dashboard.server import MAX_BATCH, DashboardServer, batch, dashboard_tokens
from engine.backends.scripted import ScriptedBackend
from engine.control.room import PlatformStatus
from engine.flow.ratelimit import SendBudget
from engine.manager import ConversationManager
from tests.dashboard_browser import Browser, open_browser
from tests.on_stage import answer, viewer_line


@pytest.fixture
async def dashboard(manager: ConversationManager) -> AsyncIterator[DashboardServer]:
    server = DashboardServer(manager, manager.settings.dashboard, dashboard_tokens(manager.settings))
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with open_browser() as opened:
        yield opened


async def shot(browser: Browser, name: str) -> None:
    """Keep a screenshot for docs/dashboard.md when DASHBOARD_SHOTS names a folder."""
    folder = os.environ.get("DASHBOARD_SHOTS")
    if folder:
        await browser.screenshot(Path(folder) / name)


def base(server: DashboardServer) -> str:
    return f"http://127.0.0.1:{server.port}"


# -- what the engine publishes ----------------------------------------------------------------


async def test_each_heard_line_reaches_the_dashboard_with_moderations_verdict(manager: ConversationManager) -> None:
    with manager.control.watch() as watcher:
        await manager.hear(viewer_line("pip, how is the frog doing?"))
        await manager.hear(viewer_line("check out evil.example.com/free, pip"))
        await manager.hear(replace(viewer_line("just chatting here"), addresses_bot=False))
        heard = watcher.take()
    assert [item["text"] for item in heard] == [
        "pip, how is the frog doing?",
        "check out evil.example.com/free, pip",
        "just chatting here",
    ]
    assert [item["verdict"] for item in heard] == [
        {"judged": True, "passes": True, "reasons": []},
        {"judged": True, "passes": False, "reasons": ["input_link"]},
        {"judged": False, "passes": True, "reasons": []},  # judged only if the character chimes in
    ]
    assert heard[0]["author"] == "mossy_frog" and heard[0]["channel"] == "twitch:stream"


async def test_why_a_line_was_not_answered_reaches_the_dashboard_and_metrics(manager: ConversationManager) -> None:
    line = viewer_line("pip?")
    with manager.control.watch() as watcher:
        manager.line_outcome(line, "stale")
        outcome = watcher.take()
    assert outcome == [{"type": "outcome", "id": line.message_id, "channel": "twitch:stream", "outcome": "stale"}]
    assert b'costar_dropped_messages_total{reason="stale"} 1.0' in manager.metrics.render()


def test_a_flood_is_sent_in_batches_that_say_how_many_more_there_were(manager: ConversationManager) -> None:
    with manager.control.watch(size=50) as watcher:
        for number in range(80):
            manager.control.publish({"type": "outcome", "id": str(number)})
        items, lost = watcher.take(), watcher.lost
    assert lost == 30 and [item["id"] for item in items] == [str(number) for number in range(30, 80)]
    update = batch([{"id": str(number)} for number in range(MAX_BATCH + 7)], lost=30)
    assert len(update["items"]) == MAX_BATCH and update["more"] == 37
    assert update["items"][-1]["id"] == str(MAX_BATCH + 6), "the newest are shown"


def test_the_status_shows_each_platforms_send_budget_and_queue(manager: ConversationManager) -> None:
    budget = SendBudget(20)
    reservation = budget.reserve()
    assert reservation is not None
    reservation.sent()
    manager.control.register_platform(
        "twitch", PlatformStatus(budgets=lambda: {"stream": (budget.in_window(), budget.limit)}, queued=lambda: 3)
    )
    assert manager.control.status() == {
        "type": "status",
        "platforms": {"twitch": {"budgets": {"stream": [1, 20]}, "queued": 3}},
    }


# -- the page -----------------------------------------------------------------------------------


async def test_the_page_shows_a_heard_line_and_the_reply_as_it_streams(
    manager: ConversationManager, scripted: ScriptedBackend, dashboard: DashboardServer, browser: Browser
) -> None:
    await browser.log_in(base(dashboard), dashboard.tokens.moderator)
    scripted.chunk_delay_s = 0.15
    scripted.enqueue(["Ribbit! The frog is doing splendidly today, thank you for asking about him."])
    replying = asyncio.create_task(answer(manager, "pip, how is the frog doing?"))
    heard = await browser.wait_for("const line = document.querySelector('#heard li'); return line && line.textContent")
    assert "mossy_frog" in heard and "how is the frog doing?" in heard and "passed" in heard
    streaming = await browser.wait_for(
        "const reply = document.querySelector('#replies li.streaming'); return reply && reply.textContent"
    )
    assert streaming.startswith("Pip") and "Ribbit" in streaming and "asking about him" not in streaming
    await shot(browser, "dashboard-live.png")
    await replying
    done = await browser.wait_for(
        "const reply = document.querySelector('#replies li.done'); return reply && reply.textContent"
    )
    assert done.endswith("asking about him.")
