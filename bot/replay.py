"""``costar replay FILE``: run a JSONL transcript through the manager and print each reply.

With ``--record OUT`` the events and the replies given are written as a new transcript; with
``--expect`` the replies recorded in FILE must be reproduced exactly (use a deterministic backend:
scripted, or the embedded model with the COSTAR_BACKEND_SEED that recorded it; the CLI replays
``--expect`` against a fresh temporary database, so what DATA_DIR remembers cannot change a reply).
Replies come out as the event's platform would send them (its output rules: one line on Twitch).
Each run answers every line again: the lines' message ids get the run's id (``msg-1~run-…``), so
memory does not take a second run for a platform delivering the same lines twice. ``resume=True``
keeps the file's ids: lines a run cut short already stored are skipped, the rest answered.
Each line goes through the same chat session as a live platform (:mod:`bot.session`), answered in
turn: the channel's ``!commands`` (the card's and COSTAR_STREAM_COMMANDS_FILE's) are answered as live,
by the same stream director, with the line's ``roles`` deciding who may use which.
The format is documented in docs/replay.md. ``--ack`` prints
``ACK line ID`` once a chat line is committed and ``ACK reply ID`` once its reply is (the
kill -9 durability test counts on these).
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

from bot.session import ChatSession, Taken
from bot.shutdown import StopRequest, finished_within_grace
from bot.transcript import event_to_dict, read_transcript
from engine.errors import BackendError
from engine.events import ChatEvent, Reply
from engine.manager import ConversationManager
from memory.text import storable_text

__all__ = ["ReplayResult", "new_run_id", "replay"]

RUN_SEPARATOR = "~"  # message id in the file, then the run: "chat-3~run-1a2b3c4d"


def new_run_id() -> str:
    return f"run-{uuid.uuid4().hex[:8]}"


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
    resume: bool = False,
) -> ReplayResult:
    """``stop``: on SIGTERM/SIGINT read no further line; the one being answered gets ``grace_s``.

    ``resume``: keep the file's message ids, so lines an earlier run stored are not answered again.
    """
    run_id = None if resume else new_run_id()
    out = out or sys.stdout
    result = ReplayResult()
    lines = list(read_transcript(transcript))  # every line checked before any is stored
    said = _Said(out)
    session = ChatSession(manager, said, platform="replay", settings=manager.settings)
    recorder = record.open("w", encoding="utf-8") if record else None
    try:
        for line in lines:
            if stop is not None and stop.requested.is_set():
                result.stopped = True
                break
            event = line.event if run_id is None else _in_run(line.event, run_id)
            answering = asyncio.ensure_future(_one(session, said, event, out, ack=ack))
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
        await session.close()
        if recorder is not None:
            recorder.close()
    return result


class _Said:
    """The session's outlet in a replay: prints what the character says, keeps the last text."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.last: str | None = None

    async def send(self, channel_id: str, text: str, *, reply_to: str | None, said: Reply | None) -> str | None:
        where = said.event.channel_key if said is not None else channel_id
        name = f"{said.persona_name}: " if said is not None else ""
        print(f"[{where}] {name}{text}", file=self.out, flush=True)
        self.last = text
        return None  # nothing was sent anywhere: no platform id to link


def _in_run(event: ChatEvent, run_id: str) -> ChatEvent:
    """The event with this run's message ids (a reply keeps pointing at the line it replies to)."""
    reply_to = None if event.reply_to_id is None else f"{event.reply_to_id}{RUN_SEPARATOR}{run_id}"
    return replace(event, message_id=f"{event.message_id}{RUN_SEPARATOR}{run_id}", reply_to_id=reply_to)


async def _one(session: ChatSession, said: _Said, event: ChatEvent, out: TextIO, *, ack: bool = False) -> str | None:
    said.last = None
    try:
        taken = await session.take_line(event)
        if taken.heard is not None:
            event = taken.heard.event  # as stored: text memory could not store (a lone surrogate) comes back cleaned
        if ack:  # printed only once the line is committed: what a crash test may count on
            print(f"ACK line {event.message_id}", file=out, flush=True)
        if taken.taken is Taken.COMMAND:  # one of the channel's own !commands: answered as live
            await session.director.join()
            return said.last
        if taken.taken is not Taken.TO_ANSWER or taken.heard is None:
            return None
        reply = await session.answer(taken.heard)
    except BackendError as exc:  # the model failed this line; a memory failure stops the replay
        print(f"[{event.channel_key}] (no reply: {exc})", file=out, flush=True)
        return None
    if reply is None:
        return None
    if ack:
        print(f"ACK reply {event.message_id}", file=out, flush=True)
    return reply.text
