"""The dashboard's cards page (docs/dashboard.md#cards): the persona check rendered, adapters in
use, and editing reactions and !commands with validation before save, keeping the file's comments."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from bot.app import build_manager, close_manager
from bot.dashboard.server import DashboardServer, dashboard_tokens
from engine.backends.scripted import ScriptedBackend
from engine.manager import ConversationManager
from engine.prompting.tokens import TokenCounter
from engine.settings import Settings
from personas.card_text import replace_blocks
from personas.errors import PersonaError
from tests.dashboard_browser import open_browser
from tests.test_dashboard import shot
from tests.test_dashboard_library import Api, api
from tests.test_dashboard_security import own

MOSS = """\
# Moss: a card for the dashboard tests. This comment must survive every edit.
name: Moss
description: A mossy frog who co-hosts.  # an inline comment, kept too
reactions:
  # raids are big moments
  raid:
    template: "Welcome, {from_channel} raiders!"
commands:
  # the lurk command, for quiet viewers
  - name: lurk
    template: "Enjoy the lurk, {user}!"
    user_cooldown_s: 60
# the style comes after the commands
style:
  max_reply_chars: 300
"""

EDITED_BLOCKS = """\
reactions:
  # raids are big moments
  raid:
    template: "Welcome, {from_channel} raiders!"
commands:
  # the lurk command, for quiet viewers
  - name: lurk
    template: "Enjoy the lurk, {user}!"
    user_cooldown_s: COOLDOWN
  # a new one
  - name: hydrate
    template: "Drink some water, {user}!"
"""


@pytest.fixture
async def moss(
    make_settings: Callable[..., Settings], tmp_path: Path, scripted: ScriptedBackend, counter: TokenCounter
) -> AsyncIterator[tuple[ConversationManager, Path]]:
    folder = tmp_path / "cards"
    folder.mkdir()
    (folder / "moss.yaml").write_text(MOSS, encoding="utf-8")
    settings = make_settings(core={"personas_dir": folder})
    manager = await build_manager(settings, backend=scripted, counter=counter)
    yield manager, folder / "moss.yaml"
    await close_manager(manager)


@pytest.fixture
async def dashboard(moss: tuple[ConversationManager, Path]) -> AsyncIterator[DashboardServer]:
    manager, _ = moss
    server = DashboardServer(manager, manager.settings.dashboard, dashboard_tokens(manager.settings))
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def moderator(dashboard: DashboardServer) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        yield await api(http, dashboard, dashboard.tokens.moderator)


def test_replacing_blocks_leaves_every_other_line_byte_for_byte() -> None:
    edited = replace_blocks(MOSS, ("reactions", "commands"), EDITED_BLOCKS.replace("COOLDOWN", "30"))
    assert edited.splitlines()[:3] == MOSS.splitlines()[:3]
    assert edited.splitlines()[-3:] == MOSS.splitlines()[-3:]
    assert "  # a new one\n" in edited and "user_cooldown_s: 30" in edited
    with pytest.raises(PersonaError, match="only reactions, commands may be edited here, not style"):
        replace_blocks(MOSS, ("reactions", "commands"), "style:\n  max_chars: 10\n")


async def test_the_cards_page_renders_persona_check_and_adapters_in_use(moderator: Api) -> None:
    status, listed = await moderator.get("cards")
    assert status == 200 and listed["broken"] == []
    by_id = {card["id"]: card for card in listed["cards"]}
    assert by_id["moss"]["editable"] and not by_id["pip"]["editable"], "built-in cards ship with costar"
    assert by_id["moss"]["check"] == {"ok": True, "lines": ["ok: Moss (moss), costar, 0 lore entries"]}
    assert by_id["moss"]["adapter"] is None
    assert (await moderator.get("card", id="moss"))[1]["text"] == MOSS[
        MOSS.index("reactions:") : MOSS.index("# the style")
    ]


async def test_an_invalid_command_is_refused_naming_the_field_and_nothing_is_written(
    moss: tuple[ConversationManager, Path], moderator: Api
) -> None:
    manager, path = moss
    status, refused = await moderator.act("card-save", id="moss", text=EDITED_BLOCKS.replace("COOLDOWN", "-5"))
    assert status == 400 and "field 'commands[0].user_cooldown_s'" in refused and refused.count("\n") == 1
    assert path.read_text(encoding="utf-8") == MOSS
    assert [command.name for command in manager.personas.cards["moss"].commands] == ["lurk"]


async def test_a_valid_edit_is_saved_with_the_files_comments_and_answers_at_once(
    moss: tuple[ConversationManager, Path], moderator: Api
) -> None:
    manager, path = moss
    status, saved = await moderator.act("card-save", id="moss", text=EDITED_BLOCKS.replace("COOLDOWN", "30"))
    assert status == 200 and saved["commands"] == ["lurk", "hydrate"]
    text = path.read_text(encoding="utf-8")
    for comment in (
        "# Moss: a card",
        "# an inline comment, kept too",
        "# raids are big",
        "# the lurk command",
        "# a new one",
        "# the style comes",
    ):
        assert comment in text, comment
    assert [command.name for command in manager.personas.cards["moss"].commands] == ["lurk", "hydrate"]


async def test_a_built_in_card_cannot_be_edited(moderator: Api) -> None:
    status, refused = await moderator.act("card-save", id="pip", text="commands: []\n")
    assert status == 403 and "COSTAR_PERSONAS_DIR" in refused


async def test_in_the_browser_an_invalid_command_is_refused_then_a_valid_one_saved(
    moss: tuple[ConversationManager, Path], dashboard: DashboardServer
) -> None:
    manager, path = moss
    async with open_browser(height=1400) as browser:
        await browser.log_in(own(dashboard), dashboard.tokens.moderator)
        await browser.wait_for("return document.querySelector('#card-moss .edit-card')")
        await browser.click("#card-moss .edit-card")
        await browser.wait_for("return document.getElementById('card-text').value.includes('lurk')")
        await browser.js(
            "document.getElementById('card-text').value = arguments[0]", EDITED_BLOCKS.replace("COOLDOWN", "soon")
        )
        await browser.click("#card-save")
        refused = await browser.wait_for("return document.querySelector('#card-result.bad')?.textContent")
        assert "commands[0].user_cooldown_s" in refused and path.read_text(encoding="utf-8") == MOSS
        await shot(browser, "dashboard-cards.png")
        await browser.js(
            "document.getElementById('card-text').value = arguments[0]", EDITED_BLOCKS.replace("COOLDOWN", "30")
        )
        await browser.click("#card-save")
        saved = await browser.wait_for("return document.querySelector('#card-result.ok')?.textContent")
        assert saved == "saved: commands !lurk, !hydrate"
    text = path.read_text(encoding="utf-8")
    assert "# Moss: a card for the dashboard tests. This comment must survive every edit." in text
    assert "  # a new one" in text and "user_cooldown_s: 30" in text
    assert [command.name for command in manager.personas.cards["moss"].commands] == ["lurk", "hydrate"]
