"""JSONL transcripts: chat events in, optionally with the replies a session gave.

One JSON object per line. A plain event line is the ChatEvent's fields; a recorded line is
``{"event": {...}, "reply": "text" | null}``. ``costar replay`` reads both. The format, field by
field, is documented in docs/replay.md. Every problem is a :class:`TranscriptError` naming
``file:line``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.events import ChatEvent, Role

__all__ = ["TranscriptError", "TranscriptLine", "event_from_dict", "event_to_dict", "read_transcript"]


class TranscriptError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    number: int
    event: ChatEvent
    recorded_reply: str | None
    has_recorded_reply: bool


def event_to_dict(event: ChatEvent) -> dict[str, Any]:
    return {
        "platform": event.platform,
        "channel_id": event.channel_id,
        "author_id": event.author_id,
        "author_name": event.author_name,
        "text": event.text,
        "message_id": event.message_id,
        "roles": sorted(role.value for role in event.roles),
        "sent_at": event.sent_at.isoformat(),
        "reply_to_id": event.reply_to_id,
        "addresses_bot": event.addresses_bot,
        "server_id": event.server_id,
    }


def event_from_dict(data: dict[str, Any], *, default_message_id: str) -> ChatEvent:
    missing = [key for key in ("channel_id", "author_name", "text") if not isinstance(data.get(key), str)]
    if missing:
        raise TranscriptError(f"missing or non-text field(s): {', '.join(missing)}")
    # Ids may be numbers (platforms use both); anything else would only fail later, in memory.
    for key in ("platform", "author_id", "message_id", "reply_to_id", "server_id"):
        if data.get(key) is not None and not isinstance(data[key], str | int):
            raise TranscriptError(f"'{key}' must be text, a number or null, not {data[key]!r}")
    raw_roles = data.get("roles") or []
    if not isinstance(raw_roles, list):
        raise TranscriptError(f"'roles' must be a list such as [\"moderator\"], not {raw_roles!r}")
    try:
        roles = frozenset(Role(role) for role in raw_roles)
    except ValueError as exc:
        raise TranscriptError(f"unknown role in 'roles' ({exc}); use {[role.value for role in Role]}") from exc
    extra: dict[str, Any] = {}
    if data.get("sent_at"):
        try:
            extra["sent_at"] = datetime.fromisoformat(data["sent_at"])
        except (TypeError, ValueError) as exc:
            raise TranscriptError(f"'sent_at' is not an ISO 8601 time: {data['sent_at']!r}") from exc
    return ChatEvent(
        platform=str(data.get("platform", "console")),
        channel_id=data["channel_id"],
        author_id=str(data.get("author_id") or data["author_name"]),
        author_name=data["author_name"],
        text=data["text"],
        message_id=str(data.get("message_id") or default_message_id),
        roles=roles,
        reply_to_id=_text_or_none(data.get("reply_to_id")),
        addresses_bot=bool(data.get("addresses_bot", True)),
        server_id=_text_or_none(data.get("server_id")),
        **extra,
    )


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def read_transcript(path: Path) -> Iterator[TranscriptLine]:
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise TranscriptError(f"{path}: cannot read the transcript ({exc.strerror or exc})") from exc
    for number, raw_bytes in enumerate(content.splitlines(), start=1):
        if not raw_bytes.strip():
            continue
        try:
            yield _line(path, number, raw_bytes)
        except TranscriptError as exc:
            raise TranscriptError(f"{path}:{number}: {exc}") from exc


def _line(path: Path, number: int, raw_bytes: bytes) -> TranscriptLine:
    try:
        raw = raw_bytes.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        raise TranscriptError(f"not UTF-8 text (byte {exc.start})") from exc
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise TranscriptError(f"invalid JSON at column {exc.colno}: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise TranscriptError("each line must be a JSON object")
    recorded = "event" in data
    body = data["event"] if recorded else data
    if not isinstance(body, dict):
        raise TranscriptError("'event' must be an object")
    reply = data.get("reply") if recorded else None
    if reply is not None and not isinstance(reply, str):
        raise TranscriptError("'reply' must be text or null")
    event = event_from_dict(body, default_message_id=f"{path.stem}-{number}")
    return TranscriptLine(number, event, reply, recorded)
