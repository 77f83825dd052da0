"""Golden transcripts: recorded sessions replay to the same replies, platform semantics included.

tests/replays/*.jsonl are recorded with a backend that answers with a digest of the prompt it got
(who it answers, how much history it saw, whether it knows the speaker, a hash of everything after
the system prompt), so a change in what the model would be shown changes the recorded reply. They
cover Twitch (roles, addressed or not, spam), Discord (servers, replies-to, channels, DMs) and the
console. tests/replays/cli/ holds a recording made by ``costar replay --backend scripted``.

After an intended prompt change, re-record and review the diff:
    UPDATE_GOLDEN=1 python -m pytest tests/test_golden_replays.py
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.app import build_manager, close_manager
from bot.replay import replay
from bot.transcript import read_transcript
from engine.backends.base import GenerationRequest
from engine.backends.scripted import ScriptedBackend
from engine.prompting.tokens import TokenCounter
from engine.settings import Settings

REPLAYS = Path(__file__).parent / "replays"
GOLDEN = sorted(REPLAYS.glob("*.jsonl"))
CLI_GOLDEN = REPLAYS / "cli" / "console_echo.jsonl"
REPO = Path(__file__).resolve().parents[1]
UPDATE = bool(os.environ.get("UPDATE_GOLDEN"))


class DigestBackend(ScriptedBackend):
    def _next_text(self, request: GenerationRequest) -> str:
        history = request.messages[1:-1]
        lines = sum(message.role == "user" for message in history)
        mine = sum(message.role == "assistant" for message in history)
        speaker = request.messages[-1].content.split(":", 1)[0]
        known = "a regular" if any("is a regular" in m.content for m in history if m.role == "system") else "new"
        shown = json.dumps([message.as_dict() for message in request.messages[1:]]).encode()
        return f"to {speaker}, {known}, after {lines} lines and {mine} replies #{hashlib.sha256(shown).hexdigest()[:8]}"


def replies_of(path: Path) -> dict[str, str | None]:
    return {line.event.message_id: line.recorded_reply for line in read_transcript(path)}


@pytest.mark.parametrize("golden", GOLDEN, ids=[path.stem for path in GOLDEN])
async def test_a_golden_transcript_reproduces_its_replies(golden: Path, tmp_path: Path, make_settings, counter) -> None:
    manager = await build_manager(make_settings(), backend=DigestBackend(), counter=counter)
    try:
        if UPDATE:
            recorded = tmp_path / golden.name
            await replay(manager, golden, record=recorded, out=io.StringIO())
            shutil.copy(recorded, golden)
        checked = manager if not UPDATE else await _fresh(make_settings(tmp_path / "check"), counter)
        result = await replay(checked, golden, expect=True, out=io.StringIO())
    finally:
        await close_manager(manager)
    assert all(line.has_recorded_reply for line in read_transcript(golden)), "re-record with UPDATE_GOLDEN=1"
    assert result.mismatches == []


async def _fresh(settings: Settings, counter: TokenCounter):  # a second database for the check after re-recording
    return await build_manager(settings, backend=DigestBackend(), counter=counter)


def test_twitch_golden_answers_only_addressed_lines_that_pass_moderation() -> None:
    replies = replies_of(REPLAYS / "twitch_chat.jsonl")
    assert [key for key, reply in replies.items() if reply is None] == ["tw-2", "tw-4", "tw-5", "tw-7", "tw-10"]
    assert replies["tw-9"] is not None  # a moderator's link is answered: moderators are exempt
    assert replies["tw-8"] is not None and "a regular" in replies["tw-8"]


def test_discord_golden_keeps_channels_and_dms_apart() -> None:
    replies = replies_of(REPLAYS / "discord_server.jsonl")
    assert replies["dc-2"] is None and replies["dc-3"] is None
    assert "after 0 lines and 0 replies" in str(replies["dc-6"])  # another channel: its own history
    assert "after 0 lines and 0 replies" in str(replies["dc-7"])  # a DM: its own history
    assert "after 0 lines" not in str(replies["dc-8"])


def test_the_cli_replays_a_recorded_console_session_with_expect(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COSTAR_DATA_DIR": str(tmp_path), "COSTAR_LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "bot.cli", "--env-file", str(tmp_path / "none.env"), "replay"]
    if UPDATE:
        subprocess.run(
            [*command, str(REPLAYS / "console_session.jsonl"), "--backend", "scripted", "--record", str(CLI_GOLDEN)],
            cwd=tmp_path,
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        env["COSTAR_DATA_DIR"] = str(tmp_path / "check")
    done = subprocess.run(
        [*command, str(CLI_GOLDEN), "--expect", "--backend", "scripted"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "replayed 4 events, 4 replies" in done.stderr
