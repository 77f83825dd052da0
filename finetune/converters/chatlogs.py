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

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from engine.prompting.lines import viewer_line
from finetune.converters.base import ConvertContext
from finetune.data import Conversation, Message
from finetune.errors import DataError
from memory.errors import MemoryStoreError
from memory.export import persona_channel_lines

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
        silence = (
            moment is not None and last_time is not None and moment - last_time > timedelta(minutes=options.gap_minutes)
        )
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
    # The same format the prompt builder gives chat lines at serving time.
    return Message(role="user", content=viewer_line(str(row.get("author") or row.get("author_name") or ""), text))


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


_SENT_REVIEWS = frozenset({"approved", "edited"})
_UNSAID_REVIEWS = frozenset({"dropped", "stale"})


def memory_db_rows(
    path: Path | str, persona_id: str, approved_ids: set[int] | None = None, platform: str | None = None
) -> list[dict[str, Any]]:
    """Chat-log rows from costar's memory database: the channels where ``persona_id`` spoke.

    Read through memory's read-only export, so exporting never touches a live bot's database.
    ``approved_ids`` marks the character lines a moderator approved; replies the streamer sent
    from the dashboard's approval queue count as approved, and those dropped there (or gone stale)
    were never said, so they are left out (docs/dashboard.md#approve-before-send).
    """
    try:
        lines = persona_channel_lines(path, persona_id, platform)
    except MemoryStoreError as exc:
        raise DataError(path, str(exc).removeprefix(f"{path}: ")) from exc
    return [
        {
            "channel": f"{line.platform}:{line.channel_id}",
            "author": line.author_name,
            "is_character": line.is_character,
            "text": line.text,
            "created_at": line.created_at,
            # Sent from the dashboard's approval queue (as written, or as the streamer edited it).
            "approved": (approved_ids is not None and line.id in approved_ids) or line.review in _SENT_REVIEWS,
        }
        for line in lines
        if line.review not in _UNSAID_REVIEWS
    ]
