"""What a new streamer meets in the first hour: each mistake refused with its fix, nothing noisy."""

from __future__ import annotations

import re

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


async def test_after_a_persona_switch_the_old_characters_lines_are_left_out(manager, scripted) -> None:
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
    assert ("user", "you: hello") in history  # what viewers said before the switch stays
    assert ("assistant", "Arr, welcome aboard!") in history  # the new character's own turn
    assert not any("glowing" in content for _, content in history)  # left out (tests/test_persona_bleed.py)


def _card_with_adapter(folder, adapter_path: str, base: str | None = None):
    folder.mkdir(parents=True, exist_ok=True)
    card = folder / "rex.yaml"
    base_line = f"  base: {base}\n" if base else ""
    card.write_text(f"name: Rex\nmodel:\n{base_line}  adapter: {{name: rex-lora, path: {adapter_path}}}\n")
    return card


def _adapter(folder, base: str = "HuggingFaceTB/SmolLM2-135M-Instruct"):
    import json

    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj"]}
    (folder / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": base}))
    save_file(
        {"base_model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.zeros(8, 4)},
        str(folder / "adapter_model.safetensors"),
    )
    return folder


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda root: None, "adapter folder .* does not exist"),
        (lambda root: (root / "adapters" / "rex").mkdir(parents=True), "no adapter_config.json"),
        (
            lambda root: _adapter(root / "adapters" / "rex", base="meta-llama/Llama-3.2-1B"),
            "trained for meta-llama/Llama-3.2-1B, but the persona answers with smollm2",
        ),
    ],
)
def test_persona_check_refuses_a_card_whose_adapter_cannot_be_used(tmp_path, capsys, make, problem) -> None:
    from bot.cli import main

    make(tmp_path)
    card = _card_with_adapter(tmp_path / "cards", "../adapters/rex")
    assert main(["--env-file", str(tmp_path / "none.env"), "persona", "check", str(card)]) == 2
    err = capsys.readouterr().err
    assert re.search(rf"costar: {re.escape(str(card))}: field 'model.adapter': .*{problem}", err), err


def test_persona_check_accepts_a_usable_adapter_relative_to_the_card(tmp_path, capsys) -> None:
    from bot.cli import main

    _adapter(tmp_path / "adapters" / "rex")
    card = _card_with_adapter(tmp_path / "cards", "../adapters/rex")
    assert main(["--env-file", str(tmp_path / "none.env"), "persona", "check", str(card)]) == 0
    assert "ok: Rex (rex)" in capsys.readouterr().out


async def test_the_bot_refuses_to_start_with_a_persona_whose_adapter_is_missing(
    make_settings, scripted, counter, tmp_path
) -> None:
    card = _card_with_adapter(tmp_path / "cards", "../adapters/rex")
    settings = make_settings(core={"personas_dir": card.parent})
    with pytest.raises(
        SettingsError, match=r"unusable LoRA adapter: persona rex .*does not exist.*costar persona check"
    ):
        await build_manager(settings, backend=scripted, counter=counter)


def test_loading_the_embedded_model_draws_no_progress_bar(model_path, capfd) -> None:
    from engine.backends.embedded import EmbeddedBackend
    from engine.settings import CoreSettings

    EmbeddedBackend(str(model_path), cache_dir=CoreSettings().cache_dir, threads=1).load()
    assert "Loading weights" not in capfd.readouterr().err
