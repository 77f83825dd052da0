"""`costar replay`: transcripts in, replies out, recordings that reproduce."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest

from bot.replay import replay
from bot.transcript import TranscriptError, read_transcript


def _write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


EVENTS: list[dict[str, object]] = [
    {"platform": "twitch", "channel_id": "stream", "author_name": "ann", "text": "hi Pip!", "addresses_bot": True},
    {"platform": "twitch", "channel_id": "stream", "author_name": "bob", "text": "lol", "addresses_bot": False},
    {
        "platform": "discord",
        "channel_id": "general",
        "server_id": "g1",
        "author_name": "cy",
        "text": "@Pip hello",
        "roles": ["moderator"],
    },
]


async def test_replay_prints_replies_and_records_a_transcript(manager, scripted, tmp_path: Path) -> None:
    scripted.enqueue(["Hi Ann!", "Hello Cy!"])
    out = io.StringIO()
    record = tmp_path / "recorded.jsonl"
    result = await replay(manager, _write_jsonl(tmp_path / "in.jsonl", EVENTS), record=record, out=out)
    assert (result.events, result.replies) == (3, 2)
    assert out.getvalue().splitlines() == ["[twitch:stream] Pip: Hi Ann!", "[discord:general] Pip: Hello Cy!"]
    recorded = [json.loads(line) for line in record.read_text().splitlines()]
    assert [row["reply"] for row in recorded] == ["Hi Ann!", None, "Hello Cy!"]
    assert recorded[2]["event"]["roles"] == ["moderator"] and await manager.memory.count_messages() == 5


async def test_replaying_a_recording_with_expect_reports_mismatches(manager, scripted, tmp_path: Path) -> None:
    recording = _write_jsonl(
        tmp_path / "rec.jsonl", [{"event": EVENTS[0], "reply": "Hi Ann!"}, {"event": EVENTS[2], "reply": "Hello Cy!"}]
    )
    scripted.enqueue(["Hi Ann!", "Something else"])
    result = await replay(manager, recording, expect=True, out=io.StringIO())
    assert result.mismatches == ["line 2: expected 'Hello Cy!', got 'Something else'"]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("not json", "Expecting value"),
        ("[1]", "must be a JSON object"),
        ('{"channel_id": "c", "text": "x"}', "author_name"),
        ('{"channel_id": "c", "author_name": "a", "text": "x", "roles": ["king"]}', "unknown role"),
        ('{"channel_id": "c", "author_name": "a", "text": "x", "sent_at": "yesterday"}', "ISO 8601"),
    ],
)
def test_bad_transcript_lines_name_the_file_and_line(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(EVENTS[0]) + "\n" + line + "\n")
    with pytest.raises(TranscriptError, match=problem) as caught:
        list(read_transcript(path))
    assert str(caught.value).startswith(f"{path}:2:")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'{"channel_id": "c", "author_name": "a", "text": "caf\xe9"}', "not UTF-8 text"),
        (b'{"channel_id": "c", "author_name": "a", "text": "x", "roles": "moderator"}', "'roles' must be a list"),
        (b'{"event": {"channel_id": "c", "author_name": "a", "text": "x"}, "reply": 5}', "'reply' must be text"),
        (b'{"channel_id": "c", "author_name": "a", "text": "x", "reply_to_id": [1]}', "'reply_to_id' must be text"),
        (b'{"channel_id": "c", "author_name": "a", "text": "x", "addresses_bot": true, "server_id": 7}', None),
    ],
)
def test_the_cli_refuses_a_bad_transcript_in_one_line_naming_file_and_line_and_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], content: bytes, problem
) -> None:
    from bot.cli import main

    monkeypatch.setenv("COSTAR_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "chat.jsonl"
    path.write_bytes(json.dumps(EVENTS[0]).encode() + b"\n" + content + b"\n")
    code = main(["--env-file", str(tmp_path / "none.env"), "replay", str(path), "--backend", "scripted"])
    err = capsys.readouterr().err
    if problem is None:  # a number where text is expected is read as text, not refused
        assert code == 0, err
        return
    assert code == 2
    assert f"costar: {path}:2: " in err and problem in err and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("costar:")] == [err.strip().splitlines()[-1]]
    assert asyncio.run(_stored_lines(tmp_path / "data" / "costar.sqlite3")) == 0  # line 1 was not replayed


async def _stored_lines(database: Path) -> int:
    from memory import SqliteMemoryStore

    store = await SqliteMemoryStore.open(database)
    try:
        return await store.count_messages()
    finally:
        await store.close()


def test_a_missing_transcript_is_one_line_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    code = main(
        ["--env-file", str(tmp_path / "none.env"), "replay", str(tmp_path / "nope.jsonl"), "--backend", "scripted"]
    )
    assert code == 2 and "cannot read the transcript (No such file or directory)" in capsys.readouterr().err


async def test_a_replayed_twitch_line_comes_out_as_twitch_would_send_it(manager, scripted, tmp_path: Path) -> None:
    scripted.enqueue(["Sure:\n```python\nprint('hi')\n```\n1. run it\n2."])
    out = io.StringIO()
    await replay(manager, _write_jsonl(tmp_path / "in.jsonl", EVENTS[:1]), out=out)
    assert out.getvalue().splitlines() == ["[twitch:stream] Pip: Sure: print('hi') 1. run it"]


def test_expect_replays_against_a_fresh_database_not_the_streamers_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    monkeypatch.setenv("COSTAR_DATA_DIR", str(tmp_path / "data"))
    recording = tmp_path / "rec.jsonl"
    args = ["--env-file", str(tmp_path / "none.env"), "replay"]
    assert (
        main(
            [
                *args,
                _write_jsonl(tmp_path / "in.jsonl", EVENTS).as_posix(),
                "--backend",
                "scripted",
                "--record",
                str(recording),
            ]
        )
        == 0
    )
    database = tmp_path / "data" / "costar.sqlite3"
    before = database.read_bytes()
    assert main([*args, str(recording), "--backend", "scripted", "--expect"]) == 0, capsys.readouterr().err
    assert database.read_bytes() == before


async def test_a_line_with_a_lone_surrogate_is_stored_cleaned_and_the_replay_goes_on(
    manager, scripted, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # json.dumps writes the lone surrogate as the escape "\ud800", the way a platform's JSON can carry one.
    rows = [
        {
            "platform": "twitch",
            "channel_id": "stream",
            "author_name": f"v{index}",
            "text": f"line {index}",
            "addresses_bot": False,
        }
        for index in range(5)
    ]
    rows[2] = {**rows[2], "text": "broken \ud800 emoji", "author_name": "bad\udcffname", "addresses_bot": True}
    rows.append({"platform": "twitch", "channel_id": "side\udcff", "author_name": "cy", "text": "pip?"})
    scripted.enqueue(["Hello there!", "Bye!"])
    printed = io.BytesIO()
    out = io.TextIOWrapper(printed, encoding="utf-8", write_through=True)  # like a real terminal: UTF-8 only
    record = tmp_path / "recorded.jsonl"
    result = await replay(manager, _write_jsonl(tmp_path / "in.jsonl", rows), record=record, out=out)
    assert (result.events, result.replies) == (6, 2), "the replay did not stop at the bad lines"
    assert printed.getvalue().decode().splitlines() == [
        "[twitch:stream] Pip: Hello there!",
        "[twitch:side\ufffd] Pip: Bye!",
    ]
    stored = await manager.memory.recent_messages("twitch", "stream", limit=10)
    viewer_lines = [(message.author_name, message.text) for message in stored if not message.is_character]
    assert viewer_lines[2] == ("bad\ufffdname", "broken \ufffd emoji")
    assert [text for _, text in viewer_lines] == ["line 0", "line 1", "broken \ufffd emoji", "line 3", "line 4"]
    assert len(record.read_text(encoding="utf-8").splitlines()) == 6
    warnings = [r.getMessage() for r in caplog.records if "cannot be stored" in r.getMessage()]
    assert len(warnings) == 2 and "author_id, author_name, text" in warnings[0], warnings


async def test_replaying_the_same_file_twice_answers_every_line_again(manager, scripted, tmp_path: Path) -> None:
    transcript = _write_jsonl(tmp_path / "in.jsonl", EVENTS)
    scripted.enqueue(["Hi Ann!", "Hello Cy!", "Hi again, Ann!", "Hello again, Cy!"])
    first = await replay(manager, transcript, out=io.StringIO())
    record = tmp_path / "second.jsonl"
    second = await replay(manager, transcript, record=record, out=io.StringIO())
    assert (first.replies, second.replies) == (2, 2)
    recorded = [json.loads(line) for line in record.read_text().splitlines()]
    assert [row["reply"] for row in recorded] == ["Hi again, Ann!", None, "Hello again, Cy!"]
    assert [row["event"]["message_id"] for row in recorded] == ["in-1", "in-2", "in-3"]  # the file's own ids


async def test_resume_skips_the_lines_an_earlier_run_stored(manager, scripted, tmp_path: Path) -> None:
    with_ids = [{**event, "message_id": f"m{number}"} for number, event in enumerate(EVENTS)]
    scripted.enqueue(["Hi Ann!", "Hello Cy!"])
    # A run that stopped after the first line had stored (and answered) it.
    await replay(manager, _write_jsonl(tmp_path / "cut.jsonl", with_ids[:1]), out=io.StringIO(), resume=True)
    out = io.StringIO()
    resumed = await replay(manager, _write_jsonl(tmp_path / "all.jsonl", with_ids), out=out, resume=True)
    assert (resumed.events, resumed.replies) == (3, 1)
    assert out.getvalue().splitlines() == ["[discord:general] Pip: Hello Cy!"]


async def test_a_replayed_command_is_answered_by_the_channels_command_not_the_model(
    manager, scripted, tmp_path: Path
) -> None:
    moderator: dict[str, object] = {
        "platform": "twitch",
        "channel_id": "stream",
        "author_name": "mo",
        "roles": ["moderator"],
    }
    lines: list[dict[str, object]] = [
        {**moderator, "text": "!lurk"},
        {**moderator, "text": "!commands"},
        {**moderator, "text": "hi Pip"},
    ]
    scripted.enqueue(["Hi Mo!"])
    out = io.StringIO()
    record = tmp_path / "recorded.jsonl"
    result = await replay(manager, _write_jsonl(tmp_path / "in.jsonl", lines), out=out, record=record)
    assert out.getvalue().splitlines() == [
        "[twitch:stream] Pip: Enjoy the lurk, mo! Pip will keep your seat warm.",
        "[twitch:stream] Pip: Commands: !lurk, !hype (moderator). Timers: secrets (every 20 min).",
        "[twitch:stream] Pip: Hi Mo!",
    ]
    assert result.replies == 3 and len(scripted.requests) == 1
    first_recorded = json.loads(record.read_text().splitlines()[0])
    assert first_recorded["reply"].startswith("Enjoy the lurk")
