"""Every caller takes a chat line in through ``manager.hear`` and links sent replies through
``manager.link_sent``; every adapter hands its lines to the one chat session (``bot.session``) and
answers through it (the Discord, Twitch and YouTube adapters are checked in their own test files)."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import sys
from pathlib import Path

import pytest

from bot.app import build_manager, close_manager
from bot.console.adapter import ConsoleAdapter
from bot.replay import replay
from engine.backends.scripted import ScriptedBackend
from engine.prompting.tokens import ApproxTokenCounter
from engine.settings import Settings
from tests.one_way_in import record_one_way_in

REPO = Path(__file__).resolve().parents[1]


class _Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


async def test_console_lines_go_in_through_hear(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = record_one_way_in(monkeypatch)
    manager = await build_manager(settings, backend=ScriptedBackend(default="Hi!"), counter=ApproxTokenCounter())
    out = _Pipe()
    try:
        await ConsoleAdapter(settings, manager, stdin=_Pipe("hello\n/persona\nhow are you?\n"), stdout=out).start()
    finally:
        await close_manager(manager)
    assert len(calls.heard) == 2, "chat lines are heard, slash commands are not chat"
    assert out.getvalue().count("Pip: Hi!") == 2
    assert [platform for platform, _ in calls.taken] == ["console", "console"], "both through the chat session"
    assert calls.answered == calls.heard, "each answered through the session's one reply path"


async def test_replayed_lines_go_in_through_hear(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = record_one_way_in(monkeypatch)
    transcript = tmp_path / "chat.jsonl"
    events = [
        {
            "platform": "twitch",
            "channel_id": "c",
            "author_name": name,
            "text": text,
            "message_id": f"m{n}",
            "addresses_bot": addressed,
        }
        for n, (name, text, addressed) in enumerate([("ann", "hi Pip", True), ("bob", "lol", False)])
    ]
    transcript.write_text("".join(json.dumps(event) + "\n" for event in events))
    manager = await build_manager(settings, backend=ScriptedBackend(default="Hi!"), counter=ApproxTokenCounter())
    try:
        result = await replay(manager, transcript, out=io.StringIO())
    finally:
        await close_manager(manager)
    # Each replay run tags the file's ids with its own run id, so a second run answers again.
    assert [message_id.split("~run-")[0] for message_id in calls.heard] == ["m0", "m1"]
    assert result.replies == 1
    assert [message_id for _, message_id in calls.taken] == calls.heard, "every line through the chat session"
    assert calls.answered == calls.heard[:1], "the addressed line answered through the session"


def test_the_flood_bench_takes_lines_in_through_hear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = record_one_way_in(monkeypatch)
    chat = tmp_path / "chat.csv"
    with chat.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["author", "message", "published_at"])
        writer.writerows([f"viewer{n % 7}", f"line number {n}", f"2024-01-01T00:00:{n:02d}+00:00"] for n in range(40))
    spec = importlib.util.spec_from_file_location("flood_bench", REPO / "bench" / "flood.py")
    assert spec is not None and spec.loader is not None
    flood = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "flood_bench", flood)  # its dataclasses look themselves up there
    spec.loader.exec_module(flood)
    assert flood.main(["--csv", str(chat), "--db-dir", str(tmp_path)]) == 0
    assert len(calls.heard) == 40
    assert len(calls.taken) == 40, "the bench measures the chat session the adapters use"
    assert "stored=40/40" in capsys.readouterr().out.splitlines()[-1]
