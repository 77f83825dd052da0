"""Approve-before-send (docs/dashboard.md#approve-before-send): held replies wait for send, edit or
drop; edits are moderated again; stale ones are dropped; every decision is stored with the reply."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from bot.app import build_manager, close_manager
from bot.dashboard.server import DashboardServer, dashboard_tokens
from engine.backends.scripted import ScriptedBackend
from engine.control.review import Approvals, Decision, HeldReply
from engine.errors import ReviewRefused, SettingsError
from engine.manager import ConversationManager
from engine.prompting.tokens import TokenCounter
from engine.settings import Settings
from finetune.converters.chatlogs import memory_db_rows
from memory.export import ExportedLine, persona_channel_lines
from tests.dashboard_browser import open_browser
from tests.on_stage import answer
from tests.test_dashboard import shot
from tests.test_dashboard_library import api


@pytest.fixture
async def holding(
    make_settings: Callable[..., Settings], scripted: ScriptedBackend, counter: TokenCounter
) -> AsyncIterator[ConversationManager]:
    """A bot that holds every Twitch reply for approval (2 s before one goes stale)."""
    settings = make_settings(dashboard={"approve": "twitch=approve", "approve_stale_s": 2.0})
    manager = await build_manager(settings, backend=scripted, counter=counter)
    yield manager
    await close_manager(manager)


async def held_reply(manager: ConversationManager, text: str = "pip, what's up?") -> tuple[asyncio.Task, HeldReply]:
    replying = asyncio.create_task(answer(manager, text))
    async with asyncio.timeout(5):
        while not manager.control.approvals.held:
            await asyncio.sleep(0.01)
    return replying, next(iter(manager.control.approvals.held.values()))


def stored_replies(manager: ConversationManager) -> list[ExportedLine]:
    return [line for line in persona_channel_lines(manager.settings.db_path, "pip") if line.is_character]


async def test_a_held_reply_is_sent_only_once_approved(holding: ConversationManager) -> None:
    with holding.control.watch() as watcher:
        replying, held = await held_reply(holding)
        await asyncio.sleep(0.2)
        assert not replying.done(), "nothing goes out while it waits"
        assert [item["type"] for item in watcher.take()][-1] == "held", "the dashboard's queue shows it"
        await holding.decide(held.held_id, Decision.APPROVED)
        assert await replying == "Hello from the script!"
    assert [(line.text, line.review, line.draft) for line in stored_replies(holding)] == [
        ("Hello from the script!", "approved", None)
    ]


async def test_an_edit_is_moderated_again_and_the_models_draft_is_kept(holding: ConversationManager) -> None:
    replying, held = await held_reply(holding)
    with pytest.raises(ReviewRefused, match="did not pass moderation: output_link"):
        await holding.decide(held.held_id, Decision.EDITED, "go to evil.example.com/free now")
    assert not replying.done(), "a refused edit leaves the reply waiting"
    await holding.decide(held.held_id, Decision.EDITED, "Hello, friend of the frog!")
    assert await replying == "Hello, friend of the frog!"
    assert [(line.text, line.review, line.draft) for line in stored_replies(holding)] == [
        ("Hello, friend of the frog!", "edited", "Hello from the script!")
    ]


async def test_a_dropped_reply_is_not_sent_and_the_drop_is_recorded(holding: ConversationManager) -> None:
    replying, held = await held_reply(holding)
    await holding.decide(held.held_id, Decision.DROPPED)
    assert await replying is None
    assert [line.review for line in stored_replies(holding)] == ["dropped"]
    with pytest.raises(ReviewRefused, match="no longer waiting"):
        await holding.decide(held.held_id, Decision.APPROVED)


async def test_a_reply_nobody_decides_on_goes_stale_and_counts_as_unanswered(holding: ConversationManager) -> None:
    started = time.monotonic()
    replying, _ = await held_reply(holding)
    assert await asyncio.wait_for(replying, 5) is None
    assert time.monotonic() - started >= 2.0
    assert [line.review for line in stored_replies(holding)] == ["stale"]
    assert b'costar_dropped_messages_total{reason="review_stale"} 1.0' in holding.metrics.render()


async def test_muting_drops_the_replies_waiting_for_approval(holding: ConversationManager) -> None:
    replying, _ = await held_reply(holding)
    await holding.mute("twitch")
    assert await asyncio.wait_for(replying, 1) is None
    assert [line.review for line in stored_replies(holding)] == ["dropped"]


def test_approve_first_n_minutes_holds_only_at_the_start() -> None:
    modes = {"twitch": "approve_first_10_minutes", "twitch:vip": "off", "*": "approve"}
    fresh = Approvals(modes, stale_s=60)
    later = Approvals(modes, stale_s=60, started_at=time.monotonic() - 11 * 60)
    assert fresh.needed("twitch:stream") and not later.needed("twitch:stream")
    assert not fresh.needed("twitch:vip"), "a channel's own mode beats its platform's"
    assert later.needed("discord:1"), "* covers the rest"
    assert not Approvals({"twitch": "approve"}, stale_s=60).needed("discord:1"), "off unless set"


def test_a_bad_approve_setting_is_one_line_naming_the_variable(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(SettingsError) as refused:
        make_settings(dashboard={"approve": "twitch=sometimes"})
    assert "COSTAR_DASHBOARD_APPROVE" in str(refused.value) and "\n" not in str(refused.value)


async def test_a_dropped_reply_never_reaches_the_models_history(
    holding: ConversationManager, scripted: ScriptedBackend
) -> None:
    scripted.enqueue(["Something the streamer did not like.", "A better answer."])
    replying, held = await held_reply(holding)
    await holding.decide(held.held_id, Decision.DROPPED)
    await replying
    replying, held = await held_reply(holding, "pip, try again?")
    await holding.decide(held.held_id, Decision.APPROVED)
    assert await replying == "A better answer."
    prompt = " ".join(message.content for message in scripted.requests[-1].messages)
    assert "pip, what's up?" in prompt and "did not like" not in prompt


async def test_the_streamer_sends_edits_and_drops_held_replies_from_the_keyboard(holding: ConversationManager) -> None:
    server = DashboardServer(holding, holding.settings.dashboard, dashboard_tokens(holding.settings))
    await server.start()
    try:
        async with open_browser() as browser:
            await browser.log_in(f"http://127.0.0.1:{server.port}", server.tokens.moderator)
            holding.control.approvals.stale_s = 60.0
            asked = {}
            for channel in ("first", "second", "third"):
                asked[channel] = asyncio.create_task(answer(holding, f"pip, {channel} question", channel=channel))
                await browser.wait_for(f"return document.querySelectorAll('#held li').length === {len(asked)}")
            await browser.press("a")
            assert await asyncio.wait_for(asked["first"], 5) == "Hello from the script!"
            await browser.wait_for("return document.querySelectorAll('#held li').length === 2")
            await browser.press("e")
            await browser.run(lambda: browser.driver.switch_to.active_element.clear())
            await browser.type_into("#held textarea", "see evil.example.com/free\n")
            refused = await browser.wait_for("return document.querySelector('#held .error').textContent")
            assert "output_link" in refused and not asked["second"].done()
            await shot(browser, "dashboard-approve.png")
            await browser.run(lambda: browser.driver.switch_to.active_element.clear())
            await browser.type_into("#held textarea", "Good question, friend!\n")
            assert await asyncio.wait_for(asked["second"], 5) == "Good question, friend!"
            await browser.wait_for("return document.querySelectorAll('#held li').length === 1")
            await browser.run(lambda: browser.driver.find_element("css selector", "body").click())
            await browser.press("d")
            assert await asyncio.wait_for(asked["third"], 5) is None
    finally:
        await server.close()
    reviews = [(line.review, line.text) for line in stored_replies(holding)]
    assert reviews == [
        ("approved", "Hello from the script!"),
        ("edited", "Good question, friend!"),
        ("dropped", "Hello from the script!"),
    ]


async def test_a_moderator_turns_approval_on_for_a_channel_from_the_dashboard(manager: ConversationManager) -> None:
    server = DashboardServer(manager, manager.settings.dashboard, dashboard_tokens(manager.settings))
    await server.start()
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            moderator = await api(http, server, server.tokens.moderator)
            assert not manager.control.approvals.needed("twitch:stream")
            assert (await moderator.act("approve-mode", scope="twitch:stream", mode="approve"))[0] == 200
            assert manager.control.approvals.needed("twitch:stream")
            status, refused = await moderator.act("approve-mode", scope="twitch:stream", mode="sometimes")
            assert status == 400 and "approve_first_N_minutes" in refused
            watcher = await api(http, server, server.tokens.read_only)
            assert (await watcher.act("approve-mode", scope="twitch:stream", mode="off"))[0] == 403
    finally:
        await server.close()
    assert manager.control.approvals.needed("twitch:stream")


async def test_the_fine_tuning_export_counts_sent_replies_as_approved_and_leaves_dropped_ones_out(
    holding: ConversationManager, scripted: ScriptedBackend
) -> None:
    scripted.enqueue(["Kept as written.", "Never said.", "Model draft."])
    for decision, text in ((Decision.APPROVED, None), (Decision.DROPPED, None), (Decision.EDITED, "Streamer's words.")):
        replying, held = await held_reply(holding)
        await holding.decide(held.held_id, decision, text)
        await replying
    rows = memory_db_rows(holding.settings.db_path, "pip")
    said = [(row["text"], row["approved"]) for row in rows if row["is_character"]]
    assert said == [("Kept as written.", True), ("Streamer's words.", True)]
