"""What a new streamer meets in the first hour: each mistake refused with its fix, nothing noisy."""

from __future__ import annotations

import pytest

from bot.app import build_manager
from engine.errors import SettingsError


async def test_a_mistyped_default_persona_is_refused_with_a_did_you_mean(make_settings, scripted, counter) -> None:
    settings = make_settings(core={"default_persona": "pipp"})
    with pytest.raises(SettingsError, match=r"COSTAR_DEFAULT_PERSONA: no persona named 'pipp'; did you mean 'pip'\?"):
        await build_manager(settings, backend=scripted, counter=counter)


async def test_a_bad_card_is_reported_once(make_settings, scripted, counter, tmp_path, caplog) -> None:
    import logging

    from bot.app import close_manager

    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "broken.yaml").write_text("name: [not, text]\n", encoding="utf-8")
    with caplog.at_level(logging.DEBUG):
        manager = await build_manager(make_settings(core={"personas_dir": cards}), backend=scripted, counter=counter)
        await close_manager(manager)
    assert len([record for record in caplog.records if "broken.yaml" in record.getMessage()]) == 1


@pytest.fixture
def restored_logging():
    import logging

    names = [
        "",
        "httpx2",
        "aiosqlite",
        "discord",
        "twitchio",
        "engine",
        "bot",
        "memory",
        "personas",
        "finetune",
        "bench",
    ]
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_third_party_chatter_stays_at_warning_unless_asked(make_settings, restored_logging) -> None:
    import logging

    from bot.cli import configure_logging

    configure_logging(make_settings(core={"log_level": "DEBUG"}))
    for library in ("httpx2", "aiosqlite", "discord.gateway", "twitchio.websocket", "openai._base_client"):
        assert not logging.getLogger(library).isEnabledFor(logging.INFO), library
        assert logging.getLogger(library).isEnabledFor(logging.WARNING), library
    assert logging.getLogger("engine.manager").isEnabledFor(logging.DEBUG)

    configure_logging(make_settings(core={"log_libraries": "DEBUG"}))
    assert logging.getLogger("aiosqlite").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("engine.manager").isEnabledFor(logging.DEBUG)  # costar's own: INFO


def test_preparing_the_model_on_every_make_run_prints_nothing(capsys, tmp_path, model_path) -> None:
    from pathlib import Path

    from bot.cli import main

    assert main(["--env-file", str(tmp_path / "none.env"), "model", "prepare", "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text(encoding="utf-8")
    assert "costar model prepare --quiet" in makefile  # what make run calls before starting


async def test_after_a_persona_switch_the_old_characters_lines_are_another_speaker(manager, scripted) -> None:
    from engine.events import ChatEvent

    async def say(text: str) -> None:
        heard = await manager.hear(ChatEvent("console", "local", "you", "you", text, addresses_bot=True))
        await manager.reply(heard)

    scripted.enqueue(["*waves a glowing hand* Welcome, traveller.", "Arr, welcome aboard!", "Aye."])
    await say("hello")
    await manager.switch_persona("console", "local", "captain brine")
    await say("who are you?")
    await say("and before?")
    history = [(message.role, message.content) for message in scripted.requests[-1].messages[1:-1]]
    assert ("user", "Pip: *waves a glowing hand* Welcome, traveller.") in history
    assert ("assistant", "Arr, welcome aboard!") in history  # the new character's own turn
    assert not any(role == "assistant" and "glowing" in content for role, content in history)
