"""Full-text recall over viewers' lines (the ``messages_fts`` index, migration 3).

Two passes, each an FTS5 index intersection ranked by BM25: the speaker's own lines anywhere on
the platform, then other viewers' lines in the channel. Terms that occur in very many lines are
dropped first: they say little about which line is meant (their inverse document frequency is
near zero) and ranking every line that holds them is what makes a search slow on a big database.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import aiosqlite

from memory.records import RecalledLine

__all__ = ["COMMON_TERM_LINES", "channel_token", "recall_lines"]

# A term found in this many lines or more is too common to search for; counting stops there, so
# the check costs a bounded index walk whatever the database size.
COMMON_TERM_LINES = 400
_COLUMNS = "m.id, m.platform, m.channel_id, m.author_name, m.text, m.created_at, m.from_moderator"


def channel_token(platform: str, channel_id: str) -> str:
    """The channel's one index token; the same expression as the migration's SQL."""
    return "c" + f"{platform}:{channel_id}".encode().hex().upper()


def _phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


async def _informative(db: aiosqlite.Connection, terms: Sequence[str]) -> list[str]:
    counts = " , ".join(
        f"(SELECT count(*) FROM (SELECT 1 FROM messages_fts WHERE messages_fts MATCH ? LIMIT {COMMON_TERM_LINES}))"
        for _ in terms
    )
    async with db.execute(f"SELECT {counts}", [f"text : {_phrase(term)}" for term in terms]) as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return [term for term, found in zip(terms, row, strict=True) if 0 < found < COMMON_TERM_LINES]


async def _ranked(db: aiosqlite.Connection, match: str, before_id: int, limit: int, *, own: bool) -> list[RecalledLine]:
    async with db.execute(
        f"SELECT {_COLUMNS} FROM messages_fts f JOIN messages m ON m.id = f.rowid"
        " WHERE messages_fts MATCH ? AND f.rowid < ? ORDER BY f.rank LIMIT ?",
        (match, before_id, limit),
    ) as cursor:
        return [
            RecalledLine(row[0], row[1], row[2], row[3], row[4], _parse(row[5]), own, bool(row[6]))
            async for row in cursor
        ]


async def recall_lines(
    db: aiosqlite.Connection,
    platform: str,
    channel_id: str,
    user_row: int | None,
    terms: Sequence[str],
    *,
    before_id: int,
    limit: int,
) -> list[RecalledLine]:
    """The speaker's (``user_row``) best-matching lines, then other viewers' in the channel."""
    rare = await _informative(db, terms) if terms and limit > 0 else []
    if not rare:
        return []
    words = " OR ".join(_phrase(term) for term in rare)
    own = (
        await _ranked(db, f"user_id : {user_row} AND text : ({words})", before_id, limit, own=True)
        if user_row is not None
        else []
    )
    others_match = f"channel : {channel_token(platform, channel_id)} AND text : ({words})"
    if user_row is not None:
        others_match += f" NOT user_id : {user_row}"
    return own + await _ranked(db, others_match, before_id, limit, own=False)


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)
