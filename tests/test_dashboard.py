"""The dashboard's live view (docs/dashboard.md): what the engine tells it, and the page in a real browser.

Browser tests drive Debian's headless Chromium with Selenium (tests/dashboard_browser.py).
Set DASHBOARD_SHOTS=docs to have them refresh the screenshots in docs/dashboard.md.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from bot.dashboard.server import MAX_BATCH, DashboardServer, batch, dashboard_tokens
from engine.backends.scripted import ScriptedBackend
from engine.control.room import PlatformStatus
from engine.events import EventKind, StreamEvent
from engine.flow.ratelimit import SendBudget
from engine.manager import ConversationManager
from engine.stage.cues import AudioCue, Cue, NoticeCue, ReplyCue, ReplyState
from engine.voice.speaker import Voice
from engine.voice.synth import EspeakSynthesizer
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


async def test_pressing_mute_stops_caption_voice_and_send_within_a_second(
    manager: ConversationManager, scripted: ScriptedBackend, dashboard: DashboardServer, browser: Browser
) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make setup installs it as root)")
    voice = Voice(manager.stage, lambda persona: EspeakSynthesizer(), metrics=manager.metrics)
    speaking = asyncio.create_task(voice.run())
    seen: list[tuple[float, Cue]] = []  # what the overlay page and OBS would get, with the time (ms)
    try:
        with manager.stage.subscribe(recorder(seen)):
            await browser.log_in(base(dashboard), dashboard.tokens.moderator)
            scripted.chunk_delay_s = 0.1
            scripted.enqueue(["Ribbit. " * 10 + "The frog has a great many things to say about lily pads today."])
            replying = asyncio.create_task(answer(manager, "pip, tell me about the frog"))
            await browser.wait_for("return document.querySelector('#replies li.streaming')")
            await asyncio.wait_for(_until(lambda: any(isinstance(cue, AudioCue) for _, cue in seen)), 10)
            await browser.click("#mute")
            pressed_ms = await browser.wait_for("return window.mutePressedAt")
            said = await asyncio.wait_for(replying, 5)
            await browser.wait_for("return document.body.classList.contains('muted')")
            struck = await browser.wait_for(
                "const r = document.querySelector('#replies li.retracted'); return r && r.textContent"
            )
            assert "Ribbit" in struck, "the dashboard keeps what was taken down, struck through"
            await shot(browser, "dashboard-muted.png")
            await asyncio.sleep(1.0)
    finally:
        speaking.cancel()
    assert said is None, "the reply in flight was cancelled: nothing to send"
    # The mute takes effect when the click's request reaches the bot; cues published between the
    # click and then were already on their way. From the first retraction on, only silence.
    taken_down = [at for at, cue in seen if isinstance(cue, ReplyCue) and cue.state is ReplyState.RETRACTED]
    assert taken_down and taken_down[0] - pressed_ms < 1000, "the caption is cleared within a second"
    after = [cue for at, cue in seen if at >= taken_down[0]]
    assert not [cue for cue in after if isinstance(cue, AudioCue | NoticeCue)], "no audio or caption after"
    assert not [cue for cue in after if isinstance(cue, ReplyCue) and cue.state is not ReplyState.RETRACTED]
    assert await browser.js("return document.getElementById('mute-state').textContent") == "MUTED: everywhere"


def recorder(seen: list[tuple[float, Cue]]) -> Callable[[Cue], bool]:
    """A stage listener that notes each cue with the time it was published (and queues none)."""

    def record(cue: Cue) -> bool:
        seen.append((time.time() * 1000, cue))
        return False

    return record


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)


async def test_the_page_shows_what_prompted_a_line_said_on_its_own(
    manager: ConversationManager, dashboard: DashboardServer, browser: Browser
) -> None:
    await browser.log_in(base(dashboard), dashboard.tokens.moderator)
    raid = StreamEvent("twitch", "stream", EventKind.RAID, "raid-1", "bigstreamer", "BigStreamer", amount=12)
    await manager.say(await manager.hear(raid), "Welcome, raiders!")
    shown = await browser.wait_for(
        "const line = document.querySelector('#replies li'); return line && line.textContent"
    )
    assert shown == "PipWelcome, raiders!raid"
