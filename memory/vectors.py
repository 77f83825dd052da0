"""Sentence vectors of viewers' lines and notes (migration 8), searched with numpy.

A vector is stored as the float32 bytes of an L2-normalised row (float16 would halve the bytes,
but converting 1,000 float16 rows back costs 0.7 ms here, more than reading the extra bytes from
cached pages), next to the line or note it embeds, in the same SQLite file; deleting the line or note deletes it (``ON DELETE CASCADE``).
Each vector belongs to a *space*, the embedder that made it: a search compares only vectors of
the query's space, so changing the model never mixes two.

A search reads few rows on purpose: one speaker's own vectors (at most ``OWN_SCAN`` newest) or a
channel's newest ``CHANNEL_SCAN`` vectors, through an index, then takes dot products in numpy.
Measured at 1,000,000 stored lines (docs/memory.md), that keeps a search within milliseconds,
where scoring the whole table would read hundreds of megabytes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import aiosqlite
import numpy as np
import numpy.typing as npt

from memory.records import Note, RecalledLine
from memory.scopes import UNKNOWN_PLACE, visible_in_sql

__all__ = [
    "CHANNEL_SCAN",
    "HELD_ROWS",
    "OWN_SCAN",
    "ChannelVectors",
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
HELD_ROWS = 4096  # channels' vectors held in memory, all together: 6.3 MB at 384 dimensions
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


_STORED = np.float32


def vector_bytes(vector: Vector) -> bytes:
    """The bytes a vector is stored as (tests look for them in the raw database files)."""
    return np.ascontiguousarray(vector, dtype=_STORED).reshape(-1).tobytes()


def _blob(vector: Vector, dimensions: int) -> bytes:
    size = np.asarray(vector).size
    if size != dimensions:
        raise ValueError(f"a {size}-d vector in a {dimensions}-d space")
    return vector_bytes(vector)


@dataclass(frozen=True, slots=True)
class _Stored:
    """A line vector as stored: its row, speaker (users.id) and channel."""

    message_id: int
    user_row: int | None
    author_id: str  # the speaker's platform user id ("" for none)
    platform: str
    channel_id: str
    blob: bytes


async def insert_line_vectors(
    db: aiosqlite.Connection, space: int, dimensions: int, rows: Sequence[LineVector]
) -> list[_Stored]:
    """Store each line's vector (replacing an older one); lines no longer stored are skipped.

    Returns what was stored, for :class:`ChannelVectors`.
    """
    found: dict[tuple[str, str], tuple[int, int | None, str, str]] = {}
    wanted: dict[str, list[str]] = {}
    for row in rows:
        wanted.setdefault(row.platform, []).append(row.platform_message_id)
    for platform, ids in wanted.items():
        for start in range(0, len(ids), 500):  # SQLite caps bound parameters
            chunk = ids[start : start + 500]
            async with db.execute(
                "SELECT m.platform_message_id, m.id, m.user_id, m.channel_id, COALESCE(u.platform_user_id, '')"
                " FROM messages m LEFT JOIN users u ON u.id = m.user_id WHERE m.is_character = 0"
                f" AND m.platform = ? AND m.platform_message_id IN ({', '.join('?' * len(chunk))})",
                [platform, *chunk],
            ) as cursor:
                found.update({(platform, row[0]): (row[1], row[2], row[3], row[4]) async for row in cursor})
    stored = [
        _Stored(message[0], message[1], message[3], row.platform, message[2], _blob(row.vector, dimensions))
        for row in rows
        if (message := found.get((row.platform, row.platform_message_id))) is not None
    ]
    await db.executemany(
        "INSERT OR REPLACE INTO message_vectors (message_id, space, user_id, platform, channel_id, vector)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [(line.message_id, space, line.user_row, line.platform, line.channel_id, line.blob) for line in stored],
    )
    return stored


@dataclass(frozen=True, slots=True)
class _ChannelRows:
    ids: npt.NDArray[np.int64]  # message ids, ascending
    authors: npt.NDArray[np.object_]  # the speaker of each, by platform user id
    matrix: npt.NDArray[np.float32]


class ChannelVectors:
    """The newest :data:`CHANNEL_SCAN` vectors of the most recently searched channels, in memory.

    A channel's first search reads them from the database (the cold figure in docs/memory.md);
    later ones are one matrix product, kept current by :meth:`added`. Only searched channels are
    held: a channel where nobody asks costs no memory. The held set is bounded by rows, not only
    by channels: a held channel keeps taking its new lines until it holds :data:`CHANNEL_SCAN`, so
    32 channels × 1,000 rows (49 MB at 384 dimensions) would fill for hours in a busy stream
    (docs/safety.md). Past ``rows``, the least recently searched channels are let go; they are
    read again on their next search. Forgetting a viewer drops every channel held
    (:meth:`clear`), so their vectors leave the process's memory as well.
    """

    def __init__(self, channels: int = 32, rows: int = HELD_ROWS) -> None:
        self.channels = channels
        self.rows = max(rows, CHANNEL_SCAN)  # one full channel always fits
        self._held: OrderedDict[tuple[str, str, int], _ChannelRows] = OrderedDict()
        self._rows_held = 0
        self._at_bound = False  # a channel was let go for the row bound: the set runs full from here

    def get(self, key: tuple[str, str, int]) -> _ChannelRows | None:
        rows = self._held.get(key)
        if rows is not None:
            self._held.move_to_end(key)
        return rows

    def put(self, key: tuple[str, str, int], rows: _ChannelRows) -> None:
        self._hold(key, rows)
        self._held.move_to_end(key)
        self._trim()

    def added(self, space: int, stored: Sequence[_Stored]) -> None:
        """Vectors just stored join the channels held (the others read them when first searched)."""
        by_channel: dict[tuple[str, str, int], list[_Stored]] = {}
        for line in stored:
            by_channel.setdefault((line.platform, line.channel_id, space), []).append(line)
        for key, lines in by_channel.items():
            held = self._held.get(key)
            if held is not None:
                self._hold(key, _newest(_merged(held, lines)))
        self._trim()

    def fill(self) -> tuple[int, int]:
        """(rows held, row capacity), as caches report their fill (``SqliteMemoryStore.held_vectors_fill``).

        Whole channels are let go, so the rows held rarely equal the bound exactly: once the bound
        has let one go, the set counts as full (capacity, capacity).
        """
        return (self.rows if self._at_bound else self._rows_held), self.rows

    def clear(self) -> None:
        self._held.clear()
        self._rows_held = 0
        self._at_bound = False

    def _hold(self, key: tuple[str, str, int], rows: _ChannelRows) -> None:
        before = self._held.get(key)
        self._rows_held += len(rows.ids) - (len(before.ids) if before is not None else 0)
        self._held[key] = rows

    def _trim(self) -> None:
        while len(self._held) > self.channels or (self._rows_held > self.rows and len(self._held) > 1):
            self._at_bound = self._at_bound or self._rows_held > self.rows
            _, dropped = self._held.popitem(last=False)
            self._rows_held -= len(dropped.ids)


def _rows_of(triples: Sequence[tuple[int, str, bytes]]) -> _ChannelRows:
    if not triples:  # a channel searched before any of its lines was embedded: no width to read yet
        return _ChannelRows(np.empty(0, np.int64), np.empty(0, np.object_), np.empty((0, 0), _STORED))
    ordered = sorted(triples, key=lambda triple: triple[0])
    ids = np.array([triple[0] for triple in ordered], dtype=np.int64)
    authors = np.array([triple[1] for triple in ordered], dtype=np.object_)
    matrix = np.frombuffer(b"".join(triple[2] for triple in ordered), dtype=_STORED).reshape(len(ordered), -1)
    return _ChannelRows(ids, authors, matrix)


def _merged(held: _ChannelRows, lines: Sequence[_Stored]) -> _ChannelRows:
    fresh = _rows_of([(line.message_id, line.author_id, line.blob) for line in lines])
    if len(held.ids) == 0:
        return fresh
    keep = ~np.isin(held.ids, fresh.ids)  # a vector stored again replaces the one held
    ids = np.concatenate([held.ids[keep], fresh.ids])
    order = np.argsort(ids, kind="stable")
    return _ChannelRows(
        ids[order],
        np.concatenate([held.authors[keep], fresh.authors])[order],
        np.concatenate([held.matrix[keep], fresh.matrix])[order],
    )


def _newest(rows: _ChannelRows) -> _ChannelRows:
    return _ChannelRows(rows.ids[-CHANNEL_SCAN:], rows.authors[-CHANNEL_SCAN:], rows.matrix[-CHANNEL_SCAN:])


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
    if not ids:
        return []
    matrix = np.frombuffer(b"".join(blobs), dtype=_STORED).reshape(len(ids), -1)
    return _top_held(np.array(ids, dtype=np.int64), matrix, query, limit)


async def nearest_lines(
    db: aiosqlite.Connection,
    held: ChannelVectors,
    space: int,
    platform: str,
    channel_id: str,
    user_id: str,
    query: Vector,
    *,
    own_only: bool,
    before_id: int,
    limit: int,
    place: str | None,
) -> list[tuple[RecalledLine, float]]:
    """The stored lines nearest ``query``, best first, with their cosine similarity.

    ``own_only``: the speaker's own lines anywhere on ``platform`` (their newest :data:`OWN_SCAN`);
    otherwise other viewers' lines among the channel's newest :data:`CHANNEL_SCAN` (held in
    memory). Only lines with ``id < before_id`` (older than the history window). With ``place``,
    the speaker's own lines are only those that may be shown there: a line said in a DM never
    comes back in a public channel (memory.scopes); the channel's lines are said where it is.
    """
    # Each statement is a round trip to the database thread: one per pass, plus the lines found.
    if own_only:
        async with db.execute(
            "SELECT v.message_id, v.vector FROM message_vectors v JOIN messages m ON m.id = v.message_id"
            " WHERE v.user_id = (SELECT id FROM users WHERE platform = ? AND platform_user_id = ?)"
            f" AND v.space = ? AND v.message_id < ? AND (? IS NULL OR {visible_in_sql('m.scope')})"
            f" ORDER BY v.message_id DESC LIMIT {OWN_SCAN}",
            (platform, user_id, space, before_id, place, place, place, place),
        ) as cursor:
            found = await cursor.fetchall()
        best = _top([row[0] for row in found], [row[1] for row in found], query, limit)
    else:
        rows = await _channel_rows(db, held, (platform, channel_id, space))
        chosen = (rows.ids < before_id) & (rows.authors != user_id)
        best = _top_held(rows.ids[chosen], rows.matrix[chosen], query, limit)
    if not best:
        return []
    lines = await _recalled(db, [message_id for message_id, _ in best], own=own_only)
    return [(lines[message_id], score) for message_id, score in best if message_id in lines]


async def _channel_rows(db: aiosqlite.Connection, held: ChannelVectors, key: tuple[str, str, int]) -> _ChannelRows:
    rows = held.get(key)
    if rows is None:
        async with db.execute(
            "SELECT v.message_id, COALESCE(u.platform_user_id, ''), v.vector FROM message_vectors v"
            " LEFT JOIN users u ON u.id = v.user_id WHERE v.platform = ? AND v.channel_id = ? AND v.space = ?"
            f" ORDER BY v.message_id DESC LIMIT {CHANNEL_SCAN}",
            key,
        ) as cursor:
            rows = _rows_of([(row[0], row[1], row[2]) async for row in cursor])
        held.put(key, rows)
    return rows


def _top_held(
    ids: npt.NDArray[np.int64], matrix: npt.NDArray[np.float32], query: Vector, limit: int
) -> list[tuple[int, float]]:
    if len(ids) == 0 or limit <= 0:
        return []
    scores = matrix @ np.asarray(query, dtype=np.float32).reshape(-1)
    best = np.argpartition(-scores, limit - 1)[:limit] if len(ids) > limit else np.arange(len(ids))
    ordered = sorted(best.tolist(), key=lambda index: (-float(scores[index]), -int(ids[index])))
    return [(int(ids[index]), float(scores[index])) for index in ordered]


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
    seen_in: str | None,
    limit: int,
) -> list[tuple[Note, float]]:
    """A viewer's notes nearest ``query`` (shared ones and ``persona_id``'s own), best first; with
    ``seen_in``, only those that may be shown in a conversation in that place (memory.scopes)."""
    async with db.execute(
        "SELECT n.id, n.text, n.created_at, n.kind, n.source_message_id, n.scope, v.vector, n.topic FROM note_vectors v"
        " JOIN notes n ON n.id = v.note_id JOIN users u ON u.id = v.user_id"
        " WHERE u.platform = ? AND u.platform_user_id = ? AND v.space = ?"
        f" AND (n.persona_id IS NULL OR ? IS NULL OR n.persona_id = ?) AND (? IS NULL OR {visible_in_sql('n.scope')})",
        (platform, user_id, space, persona_id, persona_id, seen_in, seen_in, seen_in, seen_in),
    ) as cursor:
        found = await cursor.fetchall()
    notes = {
        row[0]: Note(row[0], row[1], datetime.fromisoformat(row[2]), row[3], row[4], row[5] or UNKNOWN_PLACE, row[7])
        for row in found
    }
    best = _top([row[0] for row in found], [row[6] for row in found], query, limit)
    return [(notes[note_id], score) for note_id, score in best]
