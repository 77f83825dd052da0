"""Read-only exports of costar's memory for other tools (fine-tuning data, benchmarks).

Opened with SQLite's ``mode=ro``: an export never writes to, locks out or migrates a live bot's
database. Only this package knows the tables; callers get plain records.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from memory.errors import DatabaseUnavailable, MemoryStoreError

__all__ = ["ExportedLine", "count_viewer_lines", "persona_channel_lines", "viewer_line_counts"]


@dataclass(frozen=True, slots=True)
class ExportedLine:
    id: int
    platform: str
    channel_id: str
    author_name: str
    is_character: bool
    persona_id: str | None
    text: str
    created_at: str  # ISO 8601, as stored
    # Approve-before-send (a fine-tuning signal): approved / edited / dropped / stale, None when
    # the reply was not held; ``draft`` is the model's own text when the streamer edited it.
    review: str | None = None
    draft: str | None = None


def _read_only(path: Path | str) -> sqlite3.Connection:
    path = Path(path)
    if not path.exists():
        raise DatabaseUnavailable(f"{path}: no such memory database")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def _review_columns(connection: sqlite3.Connection) -> str:
    """The review columns (migration 12), or NULLs for a database from before them: an export
    never migrates, so it reads whatever version it is given."""
    names = {str(row[1]) for row in connection.execute("PRAGMA table_info(messages)")}
    return "review, draft" if "review" in names else "NULL, NULL"


def persona_channel_lines(path: Path | str, persona_id: str, platform: str | None = None) -> list[ExportedLine]:
    """Every line of the channels where ``persona_id`` spoke, oldest first per channel.

    Other personas' lines in those channels are left out; viewers' lines are all kept.
    """
    where = (
        " FROM messages WHERE (platform, channel_id) IN"
        " (SELECT DISTINCT platform, channel_id FROM messages WHERE is_character = 1 AND persona_id = ?)"
        + (" AND platform = ?" if platform else "")
        + " ORDER BY platform, channel_id, id"
    )
    parameters = (persona_id, platform) if platform else (persona_id,)
    try:
        with _read_only(path) as connection:
            columns = "id, platform, channel_id, author_name, is_character, persona_id, text, created_at, "
            records = connection.execute(f"SELECT {columns}{_review_columns(connection)}{where}", parameters).fetchall()
    except sqlite3.Error as exc:
        raise MemoryStoreError(f"{path}: cannot read the messages table: {exc}") from exc
    lines = [
        ExportedLine(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6], row[7], row[8], row[9])
        for row in records
    ]
    return [line for line in lines if not line.is_character or line.persona_id == persona_id]


def count_viewer_lines(path: Path | str, platform: str | None = None) -> int:
    """How many viewer (not character) lines are stored, on one platform or all."""
    query = "SELECT COUNT(*) FROM messages WHERE is_character = 0" + (" AND platform = ?" if platform else "")
    try:
        with _read_only(path) as connection:
            return int(connection.execute(query, (platform,) if platform else ()).fetchone()[0])
    except sqlite3.Error as exc:
        raise MemoryStoreError(f"{path}: cannot count messages: {exc}") from exc


def viewer_line_counts(path: Path | str, platform: str) -> list[tuple[str, int]]:
    """Every viewer on ``platform`` with how many of their lines are stored: (platform user id, lines)."""
    query = (
        "SELECT u.platform_user_id, COUNT(m.id) FROM users u JOIN messages m ON m.user_id = u.id"
        " WHERE u.platform = ? GROUP BY u.id"
    )
    try:
        with _read_only(path) as connection:
            return [(str(row[0]), int(row[1])) for row in connection.execute(query, (platform,))]
    except sqlite3.Error as exc:
        raise MemoryStoreError(f"{path}: cannot count lines per viewer: {exc}") from exc
