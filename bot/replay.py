"""``costar replay FILE``: run a JSONL transcript through the manager and print each reply.

With ``--record OUT`` the events and the replies given are written as a new transcript; with
``--expect`` the replies recorded in FILE must be reproduced exactly (use a deterministic backend:
scripted, or the embedded model with the COSTAR_BACKEND_SEED that recorded it; the CLI replays
``--expect`` against a fresh temporary database, so what DATA_DIR remembers cannot change a reply).
Replies come out as the event's platform would send them (its output rules: one line on Twitch).
The format is documented in docs/replay.md. ``--ack`` prints
``ACK line ID`` once a chat line is committed and ``ACK reply ID`` once its reply is (the
kill -9 durability test counts on these).
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from bot.shutdown import StopRequest, finished_within_grace
from bot.transcript import TranscriptLine, event_to_dict, read_transcript
from engine.errors import BackendError
from engine.manager import ConversationManager
from memory.text import storable_text

__all__ = ["ReplayResult", "replay"]


@dataclass
class ReplayResult:
    events: int = 0
    replies: int = 0
    stopped: bool = False  # a signal ended the replay before the transcript did
    mismatches: list[str] = field(default_factory=list)


async def replay(
    manager: ConversationManager,
    transcript: Path,
    *,
    record: Path | None = None,
    expect: bool = False,
    ack: bool = False,
    out: TextIO | None = None,
    stop: StopRequest | None = None,
    grace_s: float = 0.0,
) -> ReplayResult:
    """``stop``: on SIGTERM/SIGINT read no further line; the one being answered gets ``grace_s``."""
    out = out or sys.stdout
    result = ReplayResult()
    lines = list(read_transcript(transcript))  # every line checked before any is stored
    recorder = record.open("w", encoding="utf-8") if record else None
    try:
        for line in lines:
            if stop is not None and stop.requested.is_set():
                result.stopped = True
                break
            answering = asyncio.ensure_future(_one(manager, line, out, ack=ack))
            if stop is not None and not await finished_within_grace(answering, stop, grace_s):
                result.stopped = True
                break
            reply_text = await answering
            result.events += 1
            result.replies += reply_text is not None
            if recorder is not None:
                recorded = json.dumps({"event": event_to_dict(line.event), "reply": reply_text}, ensure_ascii=False)
                recorder.write(storable_text(recorded) + "\n")  # a lone surrogate cannot be written as UTF-8
                recorder.flush()  # a transcript cut short by a crash still holds every finished turn
            if expect and line.has_recorded_reply and reply_text != line.recorded_reply:
                result.mismatches.append(f"line {line.number}: expected {line.recorded_reply!r}, got {reply_text!r}")
    finally:
        if recorder is not None:
            recorder.close()
    return result


async def _one(manager: ConversationManager, line: TranscriptLine, out: TextIO, *, ack: bool = False) -> str | None:
    event = line.event
    try:
        heard = await manager.hear(event)
        event = heard.event  # as stored: text memory could not store (a lone surrogate) comes back cleaned
        if ack:  # printed only once the line is committed: what a crash test may count on
            print(f"ACK line {event.message_id}", file=out, flush=True)
        reply = await manager.reply(heard) if event.addresses_bot and not heard.blocked else None
    except BackendError as exc:  # the model failed this line; a memory failure stops the replay
        print(f"[{event.channel_key}] (no reply: {exc})", file=out, flush=True)
        return None
    if reply is None:
        return None
    print(f"[{event.channel_key}] {reply.persona_name}: {reply.text}", file=out, flush=True)
    if ack:
        print(f"ACK reply {event.message_id}", file=out, flush=True)
    return reply.text
