"""`costar replay`: transcripts in, replies out, recordings that reproduce."""

from __future__ import annotations

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
