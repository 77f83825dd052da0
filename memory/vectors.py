"""Sentence vectors of viewers' lines and notes (migration 8), searched with numpy.

A vector is stored as the float16 bytes of an L2-normalised row (half the bytes to read per
search; a cosine moves by about 1e-3), next to the line or note it embeds, in the same SQLite
file; deleting the line or note deletes it (``ON DELETE CASCADE``).
Each vector belongs to a *space*, the embedder that made it: a search compares only vectors of
the query's space, so changing the model never mixes two.

A search reads few rows on purpose: one speaker's own vectors (at most ``OWN_SCAN`` newest) or a
channel's newest ``CHANNEL_SCAN`` vectors, through an index, then takes dot products in numpy.
Measured at 1,000,000 stored lines (docs/memory.md), that keeps a search within milliseconds,
where scoring the whole table would read hundreds of megabytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import aiosqlite
import numpy as np
import numpy.typing as npt

from memory.records import Note, RecalledLine

__all__ = [
    "CHANNEL_SCAN",
    "OWN_SCAN",
    "LineVector",
    "NoteVector",
    "VectorSpace",
    "insert_line_vectors",
    "insert_note_vectors",
    "nearest_lines",
    "nearest_notes",
    "space_id",
    "vector_bytes",
]

OWN_SCAN = 5000  # a speaker's newest embedded lines searched (a very busy regular has ~2,000 in all)
CHANNEL_SCAN = 1000  # a channel's newest embedded lines searched; older ones are full-text recall's
_LINE_COLUMNS = "m.id, m.platform, m.channel_id, m.author_name, m.text, m.created_at, m.from_moderator"

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class VectorSpace:
    """The embedder whose vectors are stored and searched: its name and row width."""

    name: str
    dimensions: int


@dataclass(frozen=True, slots=True)
class LineVector:
    """A viewer line's vector, the line named by its platform and platform message id.

    The embedding worker knows a line by the platform's id (what the adapter heard); the row id
    is looked up in the same statement that stores the vector, so the per-line path costs no
    extra query, and a line forgotten meanwhile simply stores nothing.
    """

    platform: str
    platform_message_id: str
    vector: Vector


@dataclass(frozen=True, slots=True)
class NoteVector:
    note_id: int
    vector: Vector


async def space_id(db: aiosqlite.Connection, space: VectorSpace) -> int:
    """The row of ``space`` in ``vector_spaces``, created on first use (inside the caller's transaction)."""
    await db.execute(
        "INSERT INTO vector_spaces (name, dimensions) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        (space.name, space.dimensions),
    )
    async with db.execute("SELECT id, dimensions FROM vector_spaces WHERE name = ?", (space.name,)) as cursor:
        row = await cursor.fetchone()
    assert row is not None
    if int(row[1]) != space.dimensions:
        raise ValueError(f"vector space {space.name!r} holds {row[1]}-d vectors, not {space.dimensions}-d")
    return int(row[0])


_STORED = np.float16


def vector_bytes(vector: Vector) -> bytes:
    """The bytes a vector is stored as (tests look for them in the raw database files)."""
    return np.ascontiguousarray(vector, dtype=_STORED).reshape(-1).tobytes()


def _blob(vector: Vector, dimensions: int) -> bytes:
    size = np.asarray(vector).size
    if size != dimensions:
        raise ValueError(f"a {size}-d vector in a {dimensions}-d space")
    return vector_bytes(vector)


async def insert_line_vectors(db: aiosqlite.Connection, space: int, dimensions: int, rows: Sequence[LineVector]) -> int:
    """Store each line's vector (replacing an older one); lines no longer stored are skipped."""
    before = db.total_changes
    await db.executemany(
        "INSERT OR REPLACE INTO message_vectors (message_id, space, user_id, platform, channel_id, vector)"
        " SELECT id, ?, user_id, platform, channel_id, ? FROM messages"
        " WHERE platform = ? AND platform_message_id = ? AND is_character = 0",
        [(space, _blob(row.vector, dimensions), row.platform, row.platform_message_id) for row in rows],
    )
    return db.total_changes - before


async def insert_note_vectors(db: aiosqlite.Connection, space: int, dimensions: int, rows: Sequence[NoteVector]) -> int:
    before = db.total_changes
    await db.executemany(
        "INSERT OR REPLACE INTO note_vectors (note_id, space, user_id, vector)"
        " SELECT id, ?, user_id, ? FROM notes WHERE id = ?",
        [(space, _blob(row.vector, dimensions), row.note_id) for row in rows],
    )
    return db.total_changes - before


def _top(ids: list[int], blobs: list[bytes], query: Vector, limit: int) -> list[tuple[int, float]]:
    """The ``limit`` ids whose vectors have the highest dot product with ``query`` (cosine: rows are unit)."""
    if not ids or limit <= 0:
        return []
    matrix = np.frombuffer(b"".join(blobs), dtype=_STORED).reshape(len(ids), -1).astype(np.float32)
    scores = matrix @ np.asarray(query, dtype=np.float32).reshape(-1)
    best = np.argpartition(-scores, limit - 1)[:limit] if len(ids) > limit else np.arange(len(ids))
    ordered = sorted(best.tolist(), key=lambda index: (-float(scores[index]), -ids[index]))
    return [(ids[index], float(scores[index])) for index in ordered]


async def nearest_lines(
    db: aiosqlite.Connection,
    space: int,
    platform: str,
    channel_id: str,
    user_id: str,
    query: Vector,
    *,
    own_only: bool,
    before_id: int,
    limit: int,
) -> list[tuple[RecalledLine, float]]:
    """The stored lines nearest ``query``, best first, with their cosine similarity.

    ``own_only``: the speaker's own lines anywhere on ``platform``; otherwise other viewers' lines
    in ``channel_id``. Only lines with ``id < before_id`` (older than the history window).
    """
    speaker = "(SELECT id FROM users WHERE platform = ? AND platform_user_id = ?)"
    if own_only:
        query_sql = (
            f"SELECT message_id, vector FROM message_vectors WHERE user_id = {speaker} AND space = ?"
            f" AND message_id < ? ORDER BY message_id DESC LIMIT {OWN_SCAN}"
        )
        parameters: tuple[object, ...] = (platform, user_id, space, before_id)
    else:
        query_sql = (
            "SELECT message_id, vector FROM message_vectors WHERE platform = ? AND channel_id = ? AND space = ?"
            f" AND message_id < ? AND user_id IS NOT {speaker} ORDER BY message_id DESC LIMIT {CHANNEL_SCAN}"
        )
        parameters = (platform, channel_id, space, before_id, platform, user_id)
    async with db.execute(query_sql, parameters) as cursor:
        found = await cursor.fetchall()
    best = _top([row[0] for row in found], [row[1] for row in found], query, limit)
    if not best:
        return []
    lines = await _recalled(db, [message_id for message_id, _ in best], own=own_only)
    return [(lines[message_id], score) for message_id, score in best if message_id in lines]


async def _recalled(db: aiosqlite.Connection, ids: list[int], *, own: bool) -> dict[int, RecalledLine]:
    async with db.execute(
        f"SELECT {_LINE_COLUMNS} FROM messages m WHERE m.id IN ({', '.join('?' * len(ids))})", ids
    ) as cursor:
        return {
            row[0]: RecalledLine(
                row[0], row[1], row[2], row[3], row[4], datetime.fromisoformat(row[5]), own, bool(row[6])
            )
            async for row in cursor
        }


async def nearest_notes(
    db: aiosqlite.Connection,
    space: int,
    platform: str,
    user_id: str,
    query: Vector,
    *,
    persona_id: str | None,
    limit: int,
) -> list[tuple[Note, float]]:
    """A viewer's notes nearest ``query`` (shared ones and ``persona_id``'s own), best first."""
    async with db.execute(
        "SELECT n.id, n.text, n.created_at, n.kind, n.source_message_id, v.vector FROM note_vectors v"
        " JOIN notes n ON n.id = v.note_id JOIN users u ON u.id = v.user_id"
        " WHERE u.platform = ? AND u.platform_user_id = ? AND v.space = ?"
        " AND (n.persona_id IS NULL OR ? IS NULL OR n.persona_id = ?)",
        (platform, user_id, space, persona_id, persona_id),
    ) as cursor:
        found = await cursor.fetchall()
    notes = {row[0]: Note(row[0], row[1], datetime.fromisoformat(row[2]), row[3], row[4]) for row in found}
    best = _top([row[0] for row in found], [row[5] for row in found], query, limit)
    return [(notes[note_id], score) for note_id, score in best]
