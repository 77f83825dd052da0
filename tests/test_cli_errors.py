"""Bad input to the ``costar`` command gets one clear line and exit status 2, never a traceback,
and nothing already stored is lost."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from bot.cli import main

pytestmark = pytest.mark.timeout(60)


def _transcript(path: Path, *texts: str) -> Path:
    rows = [{"platform": "twitch", "channel_id": "c", "author_name": "ann", "text": text} for text in texts]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("costar: ")]
    assert len(lines) == 1, lines
    return lines[0]


def _replay(transcript: Path, data_dir: Path) -> int:
    return main(["--env-file", "/nonexistent", "replay", str(transcript), "--backend", "scripted"])


def test_a_data_folder_that_is_a_file_is_named_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("oops")
    monkeypatch.setenv("COSTAR_DATA_DIR", str(not_a_folder))
    assert _replay(_transcript(tmp_path / "chat.jsonl", "hi Pip"), not_a_folder) == 2
    error = _one_error_line(capsys)
    assert str(not_a_folder) in error and "Traceback" not in error


def test_a_database_locked_by_another_program_is_said_in_one_line_and_keeps_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COSTAR_DATA_DIR", str(tmp_path))
    # Lines wait out a lock (retried); one that outlasts the patience is refused, and said so.
    monkeypatch.setenv("COSTAR_MEMORY_BUSY_TIMEOUT_S", "0.2")
    monkeypatch.setenv("COSTAR_MEMORY_WRITE_PATIENCE_S", "1")
    transcript = _transcript(tmp_path / "chat.jsonl", "first line")
    assert _replay(transcript, tmp_path) == 0
    database = tmp_path / "costar.sqlite3"
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another program holds the write lock past the busy timeout
    try:
        assert _replay(transcript, tmp_path) == 2
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    error = _one_error_line(capsys)
    assert "locked" in error and str(database) in error
    with sqlite3.connect(database) as check:
        assert check.execute("SELECT text FROM messages WHERE is_character = 0").fetchall() == [("first line",)]


def test_a_broken_card_is_named_with_its_file_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = tmp_path / "broken.yaml"
    card.write_text("name: [unclosed\n", encoding="utf-8")
    assert main(["--env-file", "/nonexistent", "persona", "check", str(card)]) == 2
    assert str(card) in _one_error_line(capsys)


def test_a_bad_transcript_line_is_named_by_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COSTAR_DATA_DIR", str(tmp_path))
    transcript = tmp_path / "chat.jsonl"
    transcript.write_text('{"platform": "twitch"}\nnot json\n', encoding="utf-8")
    assert _replay(transcript, tmp_path) == 2
    assert f"{transcript}:1" in _one_error_line(capsys)


def test_every_start_checks_the_commands_file_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COSTAR_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COSTAR_BACKEND_KIND", "scripted")
    monkeypatch.setenv("COSTAR_STREAM_COMMANDS_FILE", str(tmp_path / "nonexistent.yaml"))
    assert main(["--env-file", "/nonexistent", "run", "--console"]) == 2
    error = _one_error_line(capsys)
    assert "COSTAR_STREAM_COMMANDS_FILE" in error and "nonexistent.yaml" in error


def test_stream_check_names_every_problem_in_a_commands_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    channel_file = tmp_path / "channel.yaml"
    channel_file.write_text(
        "commands:\n"
        "  - {name: socials}\n"  # neither template nor prompt
        "  - {name: so, level: mod, template: 'Go follow {args}!'}\n"  # no such level
        "timers:\n"
        "  - {name: discord, template: 'Join {where}!', every_min: 10}\n",  # no such field
        encoding="utf-8",
    )
    assert main(["--env-file", "/nonexistent", "stream", "check", str(channel_file)]) == 2
    error = _one_error_line(capsys)
    assert "commands[0]" in error and "exactly one of 'template' or 'prompt'" in error
    assert "commands[1].level" in error
    assert "timers[0]" in error and "{where}" in error


def test_stream_check_accepts_a_good_commands_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    channel_file = tmp_path / "channel.yaml"
    channel_file.write_text("commands:\n  - {name: socials, template: 'Find us, {user}!'}\n", encoding="utf-8")
    assert main(["--env-file", "/nonexistent", "stream", "check", str(channel_file)]) == 0
    assert capsys.readouterr().out == f"ok: {channel_file}: commands !socials; timers none\n"


def test_a_setting_that_should_be_json_and_is_not_is_named_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COSTAR_MODERATION_CHANNELS", "not json")
    assert main(["--env-file", "/nonexistent", "persona", "list"]) == 2
    assert "COSTAR_MODERATION_CHANNELS is not valid JSON" in _one_error_line(capsys)


def test_a_settings_file_that_is_not_utf8_is_named_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_bytes(b"COSTAR_LOG_LEVEL=INFO\n# caf\xe9 settings\n")  # saved as Latin-1
    assert main(["--env-file", str(env_file), "persona", "list"]) == 2
    error = _one_error_line(capsys)
    assert str(env_file) in error and "not UTF-8" in error and "line 2" in error


def test_an_overlay_port_in_use_names_the_setting_that_moves_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    monkeypatch.setenv("COSTAR_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COSTAR_BACKEND_KIND", "scripted")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("COSTAR_OVERLAY_PORT", str(taken.getsockname()[1]))
        assert main(["--env-file", "/nonexistent", "run", "--console"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [error] = [line for line in err.splitlines() if line.startswith("costar: ")]
    assert "COSTAR_OVERLAY_PORT" in error


def test_a_corrupt_gguf_model_is_named_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    corrupt = tmp_path / "model.gguf"
    corrupt.write_bytes(b"GGUF" + bytes(range(256)) * 4)  # the magic, then no valid header
    monkeypatch.setenv("COSTAR_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COSTAR_BACKEND_KIND", "llamacpp")
    monkeypatch.setenv("COSTAR_BACKEND_MODEL_PATH", str(corrupt))
    assert main(["--env-file", "/nonexistent", "run", "--console"]) == 2
    error = _one_error_line(capsys)
    assert str(corrupt) in error and "not a complete GGUF model" in error
