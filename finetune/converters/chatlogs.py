"""Chat logs (CSV/JSONL rows) and costar's own memory database → conversations.

A chat-log row: ``author`` (or ``author_name``), ``text``, and either ``is_character`` or an
author equal to the character's name; optional ``channel`` (or ``channel_id``), ``created_at``
(ISO time) and ``approved``. Lines are grouped per channel and cut into conversations at a
silence longer than ``gap_minutes`` or after ``max_turns`` lines. Viewers' lines become user
turns as ``name: text``, the form chat lines reach the model in at serving time.

Moderator approval: with ``approved_only`` set, a character line is used only when its
``approved`` field is true (the memory export marks lines whose message ids a moderator listed);
unapproved replies are dropped, never rewritten.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from engine.prompt import speaker_label
from finetune.converters.base import ConvertContext
from finetune.data import Conversation, Message
from finetune.errors import DataError

__all__ = ["ChatLogOptions", "from_chatlog", "memory_db_rows"]

_TRUE = {"1", "true", "yes", "y", "t"}


@dataclass(frozen=True, slots=True)
class ChatLogOptions:
    gap_minutes: float = 15.0
    max_turns: int = 16
    approved_only: bool = False


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in _TRUE


def _when(row: dict[str, Any]) -> datetime | None:
    stamp = row.get("created_at") or row.get("timestamp")
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return None


def _is_character(row: dict[str, Any], character: str) -> bool:
    if "is_character" in row and row["is_character"] not in (None, ""):
        return _truthy(row["is_character"])
    return str(row.get("author") or row.get("author_name") or "").lower() == character.lower()


def _windows(rows: Iterable[dict[str, Any]], options: ChatLogOptions) -> Iterator[list[dict[str, Any]]]:
    window: list[dict[str, Any]] = []
    last_channel: Any = None
    last_time: datetime | None = None
    for row in rows:
        channel, moment = row.get("channel") or row.get("channel_id"), _when(row)
        silence = moment is not None and last_time is not None and moment - last_time > timedelta(minutes=options.gap_minutes)
        if window and (channel != last_channel or silence or len(window) >= options.max_turns):
            yield window
            window = []
        window.append(row)
        last_channel, last_time = channel, moment or last_time
    if window:
        yield window


def _turn(row: dict[str, Any], character: str, options: ChatLogOptions) -> Message | None:
    text = str(row.get("text") or row.get("message") or row.get("content") or "").strip()
    if not text:
        return None
    if _is_character(row, character):
        if options.approved_only and not _truthy(row.get("approved", False)):
            return None
        return Message(role="assistant", content=text)
    # The same label the prompt builder gives chat lines at serving time.
    return Message(role="user", content=f"{speaker_label(str(row.get('author') or row.get('author_name') or ''))}: {text}")


def from_chatlog(
    rows: Iterable[dict[str, Any]], context: ConvertContext, options: ChatLogOptions | None = None
) -> Iterator[Conversation]:
    options = options or ChatLogOptions()
    character = context.character or context.card.display_name
    for window in _windows(rows, options):
        turns = [turn for row in window if (turn := _turn(row, character, options)) is not None]
        conversation = context.conversation(context.card, turns, source="chatlog")
        if conversation is not None:
            yield conversation


def memory_db_rows(
    path: Path | str, persona_id: str, approved_ids: set[int] | None = None, platform: str | None = None
) -> list[dict[str, Any]]:
    """Chat-log rows from costar's memory database: the channels where ``persona_id`` spoke.

    Opened read-only (``mode=ro``): exporting never touches a live bot's database. Lines of other
    personas are left out; ``approved_ids`` marks the character lines a moderator approved.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "no such memory database")
    query = (
        "SELECT id, platform, channel_id, author_name, is_character, persona_id, text, created_at FROM messages "
        "WHERE (platform, channel_id) IN (SELECT DISTINCT platform, channel_id FROM messages WHERE is_character = 1 AND persona_id = ?)"
        + (" AND platform = ?" if platform else "")
        + " ORDER BY platform, channel_id, id"
    )
    parameters = (persona_id, platform) if platform else (persona_id,)
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            records = connection.execute(query, parameters).fetchall()
    except sqlite3.Error as exc:
        raise DataError(path, f"cannot read the messages table: {exc}") from exc
    rows = []
    for row_id, row_platform, channel, author, is_character, row_persona, text, created_at in records:
        if is_character and row_persona != persona_id:
            continue
        rows.append(
            {
                "channel": f"{row_platform}:{channel}",
                "author": author,
                "is_character": bool(is_character),
                "text": text,
                "created_at": created_at,
                "approved": approved_ids is not None and row_id in approved_ids,
            }
        )
    return rows
