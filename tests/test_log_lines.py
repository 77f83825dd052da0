"""Start-up log lines say what is true: no overlay token where none exists, no llama.cpp context
warning for a vocabulary, no "voice will NOT be supported" from Discord, no success as a warning."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import discord
import pytest

from bot.on_stream import OnStream
from engine.manager import ConversationManager
from engine.settings import Settings


def _overlay_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if "Overlay for OBS" in record.getMessage()]


async def test_a_loopback_overlay_names_no_token_for_there_is_none(
    manager: ConversationManager, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    on_stream = await OnStream.start(make_settings(overlay={"port": 0, "host": "127.0.0.1"}), manager)
    try:
        assert on_stream.overlay is not None
        assert _overlay_lines(caplog) == [f"Overlay for OBS on http://127.0.0.1:{on_stream.overlay.port}/overlay"]
    finally:
        await on_stream.close()


async def test_an_overlay_beyond_loopback_says_where_its_token_is_kept(
    manager: ConversationManager, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    on_stream = await OnStream.start(make_settings(overlay={"port": 0, "host": "0.0.0.0"}), manager)
    try:
        [line] = _overlay_lines(caplog)
        assert line.endswith("/overlay?token=… (the token is in DATA_DIR/overlay-token)")
    finally:
        await on_stream.close()


def test_counting_with_a_gguf_vocabulary_prints_no_llama_context_warning(capfd: pytest.CaptureFixture[str]) -> None:
    from engine.prompting.tokens import GgufVocabCounter
    from engine.serving.model_store import find_smollm2_gguf

    counter = GgufVocabCounter(find_smollm2_gguf())
    assert counter.count("hello world") > 0
    assert "n_ctx_train" not in capfd.readouterr().err


async def test_discord_mode_does_not_warn_that_voice_is_unsupported(
    manager: ConversationManager,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.discord.adapter import DiscordAdapter

    monkeypatch.setattr(discord.VoiceClient, "warn_nacl", True)  # as on a machine without PyNaCl
    adapter = DiscordAdapter(make_settings(discord={"token": "fake"}), manager)
    await adapter.director.close()
    assert not [record for record in caplog.records if "PyNaCl" in record.getMessage()]


def test_a_finished_model_conversion_is_reported_as_information_not_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from engine.serving import model_store

    def convert(gguf_path: Path, out_dir: Path) -> None:  # the files a conversion leaves, quickly
        for name in model_store._CACHED_FILES:
            (out_dir / name).write_text(json.dumps({}), encoding="utf-8")

    monkeypatch.setattr(model_store, "_convert_gguf", convert)
    caplog.set_level(logging.INFO)
    model_store.ensure_default_model(tmp_path)
    [ready] = [record for record in caplog.records if record.getMessage().startswith("Model ready at")]
    assert ready.levelno == logging.INFO
