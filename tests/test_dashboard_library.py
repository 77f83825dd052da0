"""The dashboard's persona and memory pages (docs/dashboard.md#persona-and-memory): through the API
as a moderator and a read-only login, then in headless Chromium."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.dashboard.server import COOKIE, DashboardServer, dashboard_tokens
from engine.manager import ConversationManager
from tests.dashboard_browser import open_browser
from tests.on_stage import viewer_line
from tests.test_dashboard import shot
from tests.test_dashboard_security import log_in, own


@pytest.fixture
async def dashboard(manager: ConversationManager) -> AsyncIterator[DashboardServer]:
    server = DashboardServer(manager, manager.settings.dashboard, dashboard_tokens(manager.settings))
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


class Api:
    def __init__(self, http: aiohttp.ClientSession, server: DashboardServer, cookie: str, csrf: str) -> None:
        self.http, self.base = http, own(server)
        self.headers = {"Cookie": f"{COOKIE}={cookie}", "X-CSRF-Token": csrf}

    async def get(self, name: str, **query: str) -> tuple[int, Any]:
        async with self.http.get(f"{self.base}/dashboard/api/{name}", params=query, headers=self.headers) as answer:
            return answer.status, await (answer.json() if answer.status == 200 else answer.text())

    async def act(self, name: str, **body: Any) -> tuple[int, Any]:
        async with self.http.post(f"{self.base}/dashboard/action/{name}", json=body, headers=self.headers) as answer:
            return answer.status, await (answer.json() if answer.status == 200 else answer.text())


async def api(http: aiohttp.ClientSession, server: DashboardServer, token: str) -> Api:
    return Api(http, server, *await log_in(http, server, token))


async def a_viewer_with_a_note(manager: ConversationManager) -> None:
    await manager.hear(viewer_line("pip, my cat Miso says hi", author="mossy_frog"))
    await manager.hear(viewer_line("hello from the swamp", author="mossy_frog", channel="other"))
    await manager.memory.add_note("twitch", "id-mossy_frog", "has a cat named Miso", kind="disclosure")


async def test_a_moderator_switches_a_channels_persona(
    manager: ConversationManager, dashboard: DashboardServer, http: aiohttp.ClientSession
) -> None:
    moderator = await api(http, dashboard, dashboard.tokens.moderator)
    assert (await moderator.get("personas", channel="twitch:stream"))[1]["current"] == "pip"
    assert await moderator.act("persona", channel="twitch:stream", persona="captain-brine") == (
        200,
        {"type": "persona", "channel": "twitch:stream", "persona": "captain-brine"},
    )
    assert (await manager.persona_for("twitch", "stream")).persona_id == "captain-brine"
    status, refused = await moderator.act("persona", channel="twitch:stream", persona="nobody")
    assert status == 400 and "nobody" in refused and refused.count("\n") == 1
    watcher = await api(http, dashboard, dashboard.tokens.read_only)
    assert (await watcher.act("persona", channel="twitch:stream", persona="pip"))[0] == 403


async def test_a_viewers_notes_and_lines_say_where_they_came_from(
    manager: ConversationManager, dashboard: DashboardServer, http: aiohttp.ClientSession
) -> None:
    await a_viewer_with_a_note(manager)
    watcher = await api(http, dashboard, dashboard.tokens.read_only)
    status, found = await watcher.get("viewers", q="MOSSY")
    assert status == 200 and [(v["name"], v["lines"]) for v in found["viewers"]] == [("mossy_frog", 2)]
    assert (await watcher.get("viewers", q="%"))[1]["viewers"] == [], "a LIKE wildcard is searched as text"
    status, about = await watcher.get("viewer", platform="twitch", id="id-mossy_frog")
    assert [(note["text"], note["kind"]) for note in about["notes"]] == [("has a cat named Miso", "disclosure")]
    assert [(line["text"], line["channel"]) for line in about["lines"]] == [
        ("hello from the swamp", "twitch:other"),
        ("pip, my cat Miso says hi", "twitch:stream"),
    ]


async def test_a_moderator_deletes_a_note(
    manager: ConversationManager, dashboard: DashboardServer, http: aiohttp.ClientSession
) -> None:
    await a_viewer_with_a_note(manager)
    moderator = await api(http, dashboard, dashboard.tokens.moderator)
    note_id = (await moderator.get("viewer", platform="twitch", id="id-mossy_frog"))[1]["notes"][0]["id"]
    assert (await moderator.act("delete-note", platform="twitch", note=note_id))[0] == 200
    assert (await manager.about("twitch", "id-mossy_frog")).notes == []
    assert (await moderator.act("delete-note", platform="twitch", note=note_id))[0] == 404


async def test_forgetting_a_viewer_needs_their_name_typed_again(
    manager: ConversationManager, dashboard: DashboardServer, http: aiohttp.ClientSession
) -> None:
    await a_viewer_with_a_note(manager)
    moderator = await api(http, dashboard, dashboard.tokens.moderator)
    status, refused = await moderator.act("forget", platform="twitch", id="id-mossy_frog", confirm="someone")
    assert status == 400 and "mossy_frog" in refused
    assert (await manager.about("twitch", "id-mossy_frog")).record is not None, "nothing forgotten yet"
    status, done = await moderator.act("forget", platform="twitch", id="id-mossy_frog", confirm="Mossy_Frog")
    assert status == 200 and done["lines"] == 2
    assert (await manager.about("twitch", "id-mossy_frog")).record is None
    assert await manager.memory.count_messages() == 0


async def test_the_rolling_summary_of_a_channel(
    manager: ConversationManager, dashboard: DashboardServer, http: aiohttp.ClientSession
) -> None:
    watcher = await api(http, dashboard, dashboard.tokens.read_only)
    assert (await watcher.get("summary", channel="twitch:stream"))[1] == {"summary": None}
    await manager.memory.save_summary("twitch", "stream", "Chat talked about frogs.", 7, "pip")
    summary = (await watcher.get("summary", channel="twitch:stream"))[1]["summary"]
    assert (summary["text"], summary["upto"]) == ("Chat talked about frogs.", 7)
    assert (await watcher.get("summary", channel="no-colon"))[0] == 400


async def test_in_the_browser_switch_persona_then_find_and_forget_a_viewer(
    manager: ConversationManager, dashboard: DashboardServer
) -> None:
    await a_viewer_with_a_note(manager)
    async with open_browser(height=1000) as browser:
        await browser.log_in(own(dashboard), dashboard.tokens.moderator)
        await manager.hear(viewer_line("pip, are you there?", author="mossy_frog"))  # the page learns the channel
        await browser.wait_for("return document.getElementById('persona-choice').options.length > 1")
        await browser.js("document.getElementById('persona-choice').value = 'captain-brine'")
        await browser.click("#persona-switch")
        await browser.wait_for("return document.getElementById('persona-choice').dataset.current === 'captain-brine'")
        assert (await manager.persona_for("twitch", "stream")).persona_id == "captain-brine"
        await browser.type_into("#viewer-query", "mossy\n")
        await browser.wait_for("return document.querySelector('#viewers li')")
        await browser.click("#viewers li")
        await browser.wait_for("return document.querySelector('#viewer-notes li')")
        notes = await browser.js("return document.getElementById('viewer-notes').textContent")
        assert "has a cat named Miso" in notes and "disclosure" in notes
        await shot(browser, "dashboard-memory.png")
        await browser.type_into("#forget-confirm", "wrong name")
        await browser.click("#forget")
        assert "to confirm" in await browser.wait_for("return document.getElementById('viewer-error').textContent")
        assert (await manager.about("twitch", "id-mossy_frog")).record is not None
        await browser.run(lambda: browser.driver.find_element("css selector", "#forget-confirm").clear())
        await browser.type_into("#forget-confirm", "mossy_frog")
        await browser.click("#forget")
        await browser.wait_for("return document.getElementById('viewer').hidden")
    assert (await manager.about("twitch", "id-mossy_frog")).record is None
    assert await manager.memory.count_messages() == 0
