"""Stopping on SIGTERM / SIGINT (docker stop, Ctrl-C): stop taking lines, let replies in flight finish,
close the platforms and the database, exit 0 — in a real subprocess, as a container runs the bot."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GRACE_S = 5.0
LINES = 3000

pytestmark = pytest.mark.timeout(120)


def _environment(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "COSTAR_BACKEND_KIND": "scripted",
        "COSTAR_DATA_DIR": str(tmp_path),
        "COSTAR_LOG_LEVEL": "INFO",
        "COSTAR_SHUTDOWN_GRACE_S": str(GRACE_S),
    }


def _costar(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "--env-file", str(tmp_path / "none.env"), *args],
        cwd=tmp_path,
        env=_environment(tmp_path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(process: subprocess.Popen[str], signal_number: int) -> tuple[int, float, str, str]:
    """Send the signal; (exit status, seconds until it exited, the rest of stdout, stderr)."""
    sent = time.monotonic()
    process.send_signal(signal_number)
    try:
        stdout, stderr = process.communicate(timeout=GRACE_S + 20)
    finally:
        process.kill()
    return process.returncode, time.monotonic() - sent, stdout, stderr


def _note_ack(output: str, lines: set[str], replies: set[str]) -> None:
    if output.startswith("ACK line "):
        lines.add(output.split()[2])
    elif output.startswith("ACK reply "):
        replies.add(output.split()[2])


def _stored(db_path: Path) -> tuple[set[str], set[str], str]:
    with sqlite3.connect(db_path) as database:
        lines = {row[0] for row in database.execute("SELECT platform_message_id FROM messages WHERE is_character = 0")}
        replies = {row[0] for row in database.execute("SELECT reply_to_id FROM messages WHERE is_character = 1")}
        integrity = database.execute("PRAGMA integrity_check").fetchone()[0]
    return lines, replies, integrity


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_a_replay_finishes_the_reply_in_flight_and_exits_0(tmp_path: Path, signal_number: int) -> None:
    transcript = tmp_path / "chat.jsonl"
    rows = [
        {
            "platform": "twitch",
            "channel_id": "stream",
            "author_id": f"viewer{number % 41}",
            "author_name": f"viewer{number % 41}",
            "text": f"pip, question {number}: what do you think?",
            "message_id": f"q{number}",
            "addresses_bot": True,  # every line is answered: a reply is nearly always in flight
        }
        for number in range(LINES)
    ]
    transcript.write_text("".join(json.dumps(row) + "\n" for row in rows))
    process = _costar(tmp_path, "replay", str(transcript), "--ack")
    acked_lines: set[str] = set()
    acked_replies: set[str] = set()
    assert process.stdout is not None
    for output in process.stdout:
        _note_ack(output, acked_lines, acked_replies)
        if len(acked_lines) >= 200:
            break
    returncode, took_s, rest, stderr = _stop(process, signal_number)
    for output in rest.splitlines():  # acknowledgements printed while stopping count too
        _note_ack(output, acked_lines, acked_replies)
    lines, replies, integrity = _stored(tmp_path / "costar.sqlite3")
    assert returncode == 0, stderr
    assert took_s < GRACE_S + 5, f"took {took_s:.1f} s to stop"
    assert "stopped by a signal" in stderr
    assert integrity == "ok"
    assert acked_lines <= lines, f"lost {len(acked_lines - lines)} acknowledged lines"
    assert acked_replies <= replies, f"lost {len(acked_replies - replies)} acknowledged replies"
    assert len(lines) < LINES, "the replay stopped taking lines"


def test_costar_run_stops_on_sigterm_while_waiting_for_input(tmp_path: Path) -> None:
    process = _costar(tmp_path, "run", "--console")
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    process.stdin.write("hello pip, are you there?\n")
    process.stdin.flush()
    answer = process.stdout.readline()  # the console now waits for the next line; stdin stays open
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        returncode = process.wait(timeout=GRACE_S + 20)  # stdin is not closed, as in a terminal
    finally:
        process.kill()
    took_s = time.monotonic() - sent
    lines, replies, integrity = _stored(tmp_path / "costar.sqlite3")
    assert "hello pip" in answer
    assert returncode == 0, process.stderr.read()
    assert took_s < GRACE_S, f"took {took_s:.1f} s: waiting for input must not hold the stop"
    assert integrity == "ok" and len(lines) == 1 and len(replies) == 1
