"""Data safety: kill -9 loses nothing acknowledged, and forgetting a user leaves no trace in the file."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from bot.app import build_manager, close_manager
from engine.backends.scripted import ScriptedBackend
from engine.events import ChatEvent

REPO = Path(__file__).resolve().parents[1]
KILLS = 5
LINES_PER_RUN = 3000


def _transcript(path: Path, run: int) -> Path:
    rows = []
    for number in range(LINES_PER_RUN):
        rows.append(
            {
                "platform": "twitch",
                "channel_id": "stream",
                "author_id": f"viewer{number % 37}",
                "author_name": f"viewer{number % 37}",
                "text": f"line {number} of run {run}, hello Pip",
                "message_id": f"run{run}-{number}",
                "addresses_bot": number % 5 == 0,
            }
        )
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _replay_until_killed(tmp_path: Path, transcript: Path, kill_after_acks: int) -> tuple[set[str], set[str]]:
    """Run ``costar replay --ack`` and SIGKILL it after that many acknowledgements."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "COSTAR_BACKEND_KIND": "scripted",
        "COSTAR_DATA_DIR": str(tmp_path),
        "COSTAR_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "--env-file", str(tmp_path / "none.env"), "replay", str(transcript), "--ack"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: set[str] = set()
    replies: set[str] = set()
    assert process.stdout is not None
    try:
        for output in process.stdout:
            if output.startswith("ACK line "):
                lines.add(output.split()[2])
            elif output.startswith("ACK reply "):
                replies.add(output.split()[2])
            if len(lines) >= kill_after_acks:
                process.send_signal(signal.SIGKILL)
                break
    finally:
        process.kill()
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the replay ended before it could be killed"
    return lines, replies


def test_kill_9_loses_no_acknowledged_line_or_reply(tmp_path: Path, capsys) -> None:
    chooser = random.Random(20261123)
    acked_lines: set[str] = set()
    acked_replies: set[str] = set()
    for run in range(KILLS):
        lines, replies = _replay_until_killed(
            tmp_path, _transcript(tmp_path / f"run{run}.jsonl", run), chooser.randint(1, LINES_PER_RUN - 500)
        )
        acked_lines |= lines
        acked_replies |= replies
        with sqlite3.connect(tmp_path / "costar.sqlite3") as database:
            assert database.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            stored = {
                row[0] for row in database.execute("SELECT platform_message_id FROM messages WHERE is_character = 0")
            }
            answered = {row[0] for row in database.execute("SELECT reply_to_id FROM messages WHERE is_character = 1")}
        assert acked_lines <= stored, f"lost {len(acked_lines - stored)} acknowledged lines after kill {run + 1}"
        assert acked_replies <= answered, (
            f"lost {len(acked_replies - answered)} acknowledged replies after kill {run + 1}"
        )
    with capsys.disabled():
        print(
            f"\ndurability: {KILLS} kill -9s, {len(acked_lines)} lines and {len(acked_replies)} replies acknowledged, "
            f"{len(stored)} lines stored, 0 acknowledged lost, integrity ok"
        )
    assert len(stored) >= len(acked_lines) > 0


def _assert_no_trace(folder: Path) -> None:
    files = [path for path in folder.iterdir() if path.name.startswith("costar.sqlite3")]
    raw = b"".join(path.read_bytes() for path in files)
    for marker in (b"zyxwalice", b"quokka", b"marmalade"):
        assert marker not in raw, f"{marker!r} still in the database files"


def _event(author: str, text: str, number: int) -> ChatEvent:
    return ChatEvent(
        platform="twitch",
        channel_id="stream",
        author_id=f"id-{author}",
        author_name=author,
        text=text,
        message_id=f"f{number}",
        addresses_bot=True,
    )


async def test_forget_leaves_no_trace_of_the_user_in_the_database_files(tmp_path: Path, make_settings, counter) -> None:
    settings = make_settings(prompt={"history_lines": 6})  # trims early, so summaries quote the user
    manager = await build_manager(settings, backend=ScriptedBackend(echo=True), counter=counter)
    try:
        for number in range(40):
            author, text = (
                ("zyxwalice", f"my secret is quokka{number}marmalade")
                if number % 3 == 0
                else ("bob", f"bob line {number}")
            )
            await manager.handle(_event(author, text, number))
        await manager.handle(_event("zyxwalice", "my cat is called quokkacat", 40))  # noticed as a note
        await manager.memory.add_note("twitch", "id-zyxwalice", "likes quokkanotes")
        assert len(await manager.memory.notes_for("twitch", "id-zyxwalice")) == 2
        summary = await manager.memory.latest_summary("twitch", "stream")
        assert summary is not None and "zyxwalice" in summary.text
        result = await manager.forget("twitch", "id-zyxwalice")
        assert result.users == 1 and result.messages >= 14 * 2
        assert await manager.memory.get_user("twitch", "id-zyxwalice") is None
        _assert_no_trace(tmp_path)  # while the bot still runs (the WAL is live) ...
    finally:
        await close_manager(manager)
    _assert_no_trace(tmp_path)  # ... and after it stopped
    with sqlite3.connect(tmp_path / "costar.sqlite3") as database:
        dump = "\n".join(database.iterdump())
    assert "zyxwalice" not in dump and "quokka" not in dump and "bob line 1" in dump
    with sqlite3.connect(tmp_path / "costar.sqlite3") as database:
        database.execute("CREATE VIRTUAL TABLE temp.terms USING fts5vocab(main, messages_fts, 'row')")
        assert database.execute("SELECT term FROM temp.terms WHERE term LIKE 'quokka%'").fetchall() == []
        assert database.execute("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'bob'").fetchone()[0] > 0
        assert database.execute("SELECT count(*) FROM notes").fetchone()[0] == 0
