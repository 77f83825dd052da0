"""JSONL transcripts: chat events in, optionally with the replies a session gave.

One JSON object per line. A plain event line is the ChatEvent's fields; a recorded line is
``{"event": {...}, "reply": "text" | null}``. ``costar replay`` reads both.
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
    try:
        roles = frozenset(Role(role) for role in data.get("roles", []))
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
        reply_to_id=data.get("reply_to_id"),
        addresses_bot=bool(data.get("addresses_bot", True)),
        server_id=data.get("server_id"),
        **extra,
    )


def read_transcript(path: Path) -> Iterator[TranscriptLine]:
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
                if not isinstance(data, dict):
                    raise TranscriptError("each line must be a JSON object")
                recorded = "event" in data
                body = data["event"] if recorded else data
                if not isinstance(body, dict):
                    raise TranscriptError("'event' must be an object")
                event = event_from_dict(body, default_message_id=f"{path.stem}-{number}")
            except (json.JSONDecodeError, TranscriptError) as exc:
                raise TranscriptError(f"{path}:{number}: {exc}") from exc
            yield TranscriptLine(number, event, data.get("reply") if recorded else None, recorded)
