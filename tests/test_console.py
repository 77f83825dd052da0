"""The console adapter and `costar run`, end to end with the real SmolLM2 model."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.app import build_manager
from bot.console.adapter import ConsoleAdapter
from engine.settings import Settings

pytestmark = pytest.mark.model
REPO = Path(__file__).resolve().parents[1]


class _Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


async def _console_session(settings: Settings, backend, lines: str) -> str:
    manager = await build_manager(settings, backend=backend)
    out = _Pipe()
    try:
        await ConsoleAdapter(settings, manager, stdin=_Pipe(lines), stdout=out).start()
    finally:
        await manager.memory.close()  # the session-wide model stays loaded
    return out.getvalue()


async def test_piped_console_answers_each_line_in_the_default_characters_voice(make_settings, local_backend) -> None:
    settings = make_settings(backend={"seed": 7})  # sampling, but the same every run
    output = await _console_session(settings, local_backend, "hi! who are you?\nwhat game is this?\n")
    replies = output.strip().splitlines()
    assert len(replies) == 2
    for reply in replies:
        name, _, text = reply.partition(": ")
        assert name == "Pip"
        assert text.strip()
    introduction = replies[0].lower()
    assert "pip" in introduction.partition(": ")[2] or "sprite" in introduction, replies[0]


async def test_memory_survives_a_restart_and_knows_the_regular(settings, local_backend) -> None:
    await _console_session(settings, local_backend, "hello Pip\n")
    seen: list = []
    original_stream = local_backend.stream

    def recording_stream(request):
        seen.append(request)
        return original_stream(request)

    local_backend.stream = recording_stream
    try:
        await _console_session(settings, local_backend, "do you remember me?\n")
    finally:
        del local_backend.stream
    prompt_text = "\n".join(message.content for message in seen[-1].messages)
    assert "This viewer is a regular: 2 messages" in prompt_text
    assert "you: hello Pip" in prompt_text  # the first run's line is history now
    manager = await build_manager(settings, backend=local_backend)
    try:
        user = await manager.memory.get_user("console", "you")
        assert user is not None and user.message_count == 2
    finally:
        await manager.memory.close()


async def test_console_slash_commands_switch_persona_and_forget(settings, scripted) -> None:
    output = await _console_session(settings, scripted, "/persona captain brine\nahoy\n/persona\n/forget\n/about\n")
    assert "[Now playing Captain Brine.]" in output
    assert "Captain Brine: Hello from the script!" in output
    assert "[Current persona: Captain Brine.]" in output
    assert "forgot 2 messages" in output  # the viewer line and the reply to it
    assert "you: 0 messages remembered" in output


def test_costar_run_with_piped_input_prints_a_reply_and_exits_zero(
    tmp_path: Path, model_path: Path, pristine_cards: Path
) -> None:
    env = {
        **os.environ,
        "COSTAR_DATA_DIR": str(tmp_path),
        "PYTHONPATH": str(REPO),
        "COSTAR_BACKEND_TIMEOUT_S": "600",
        "COSTAR_PERSONAS_DIR": str(pristine_cards),
    }
    env = {key: value for key, value in env.items() if not key.startswith(("DISCORD_", "TWITCH_"))}
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "run"],
        input="hi! who are you?\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    name, _, text = result.stdout.strip().partition(": ")
    assert name == "Pip" and text.strip(), result.stdout
    assert (tmp_path / "costar.sqlite3").exists()
