"""Full-text recall over viewers' lines (the ``messages_fts`` index, migration 3).

Two passes: the speaker's own lines anywhere on the platform (an index intersection with the
speaker's token), then other viewers' lines in the channel (the newest matches, filtered to the
channel). Terms found in very many lines are dropped first: they say little about which line is
meant, and matching them is what makes a search slow on a big database. Each pass ranks its newest
matches by the summed inverse document frequency of the terms they hold, newest first on ties.
FTS5's own ``bm25`` is not used: it counts every phrase's lines for its weights, and the
speaker's token phrase is in every one of their lines (milliseconds for a busy regular).

Terms are folded (:mod:`memory.spelling`) and searched in every spelling the index may hold, so
"favourite" finds "favorite", "3" finds "three" and "dog's" finds "dog".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from memory.records import RecalledLine
from memory.scopes import visible_in_sql
from memory.spelling import fold_text, fold_word, holds, spellings

__all__ = ["COMMON_TERM_LINES", "recall_lines"]

# A term found in this many lines or more is too common to search for; counting stops there, so
# the check costs a bounded index walk whatever the database size.
COMMON_TERM_LINES = 250
_CANDIDATES = 40  # newest matches ranked per pass
_RARE_TERM_LINES = 3  # in a small store, a term counts as informative up to here
_CHANNEL_SCAN = 250  # newest matches of the terms anywhere, of which the channel's are kept
_COLUMNS = "m.id, m.platform, m.channel_id, m.author_name, m.text, m.created_at, m.from_moderator"


def _phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _any_spelling(term: str) -> str:
    """An FTS5 query for a folded term in any of its spellings: ``("favorite" OR "favourite")``."""
    return "(" + " OR ".join(_phrase(spelling) for spelling in spellings(term)) + ")"


@dataclass(frozen=True, slots=True)
class _Search:
    user_row: int | None  # the speaker's users.id, None for someone never stored
    lines_with: dict[str, int]  # each useful term: how many lines hold it
    stored: int  # about how many lines there are (the newest row id)

    @property
    def informative_at(self) -> int:
        """A term in at most this many lines points at something particular (1 line in 1,000)."""
        return max(_RARE_TERM_LINES, self.stored // 1000)


async def _search_for(db: aiosqlite.Connection, platform: str, user_id: str, terms: Sequence[str]) -> _Search:
    """The speaker, the useful terms with their line counts, and the store's size: one query
    (each round trip to the database thread counts at this scale), with bounded counts."""
    counts = "".join(
        f", (SELECT count(*) FROM (SELECT 1 FROM messages_fts WHERE messages_fts MATCH ? LIMIT {COMMON_TERM_LINES}))"
        for _ in terms
    )
    parameters = [platform, user_id, *(f"text : {_any_spelling(term)}" for term in terms)]
    query = (
        "SELECT (SELECT id FROM users WHERE platform = ? AND platform_user_id = ?),"
        f" (SELECT max(id) FROM messages){counts}"
    )
    async with db.execute(query, parameters) as cursor:
        row = await cursor.fetchone()
    assert row is not None
    useful = {term: found for term, found in zip(terms, row[2:], strict=True) if 0 < found < COMMON_TERM_LINES}
    return _Search(int(row[0]) if row[0] is not None else None, useful, int(row[1] or 0))


async def _rows(
    db: aiosqlite.Connection, query: str, parameters: tuple[object, ...], *, own: bool
) -> list[RecalledLine]:
    async with db.execute(query, parameters) as cursor:
        return [
            RecalledLine(row[0], row[1], row[2], row[3], row[4], _parse(row[5]), own, bool(row[6]))
            async for row in cursor
        ]


async def _speakers_newest(
    db: aiosqlite.Connection, user_row: int, words: str, before_id: int, place: str | None
) -> list[RecalledLine]:
    # Their own lines from anywhere, but only those that may be shown where they talk now: a line
    # said in a DM never comes back in a public channel (memory.scopes).
    query = (
        f"SELECT {_COLUMNS} FROM messages_fts f JOIN messages m ON m.id = f.rowid"
        f" WHERE messages_fts MATCH ? AND f.rowid < ? AND (? IS NULL OR {visible_in_sql('m.scope')})"
        f" ORDER BY f.rowid DESC LIMIT {_CANDIDATES}"
    )
    parameters = (f"user_id : {user_row} AND text : ({words})", before_id, place, place, place, place)
    return await _rows(db, query, parameters, own=True)


async def _channels_newest(
    db: aiosqlite.Connection, platform: str, channel_id: str, user_row: int | None, words: str, before_id: int
) -> list[RecalledLine]:
    query = (
        f"SELECT {_COLUMNS} FROM messages m WHERE m.id IN (SELECT rowid FROM messages_fts"
        f" WHERE messages_fts MATCH ? AND rowid < ? ORDER BY rowid DESC LIMIT {_CHANNEL_SCAN})"
        f" AND m.platform = ? AND m.channel_id = ? AND m.user_id IS NOT ? ORDER BY m.id DESC LIMIT {_CANDIDATES}"
    )
    parameters = (f"text : ({words})", before_id, platform, channel_id, user_row)
    return await _rows(db, query, parameters, own=False)


def _best(
    lines: list[RecalledLine], search: _Search, limit: int, *, own: bool, lenient: bool = False
) -> list[RecalledLine]:
    """The relevant lines holding the rarest terms (summed log inverse frequency), newest first on ties.

    One word in common is chatter, not a memory: the speaker's own line needs one informative
    term (or two terms), any term when ``lenient`` (they asked about themselves); another
    viewer's line two terms, one of them informative.
    """
    informative_at = search.informative_at

    def held(line: RecalledLine) -> list[int]:
        words = set(fold_text(line.text))
        return [count for term, count in search.lines_with.items() if holds(words, term)]

    def relevant(counts: list[int]) -> bool:
        informative = any(count <= informative_at for count in counts)
        if own:
            return lenient or informative or len(counts) >= 2
        return informative and len(counts) >= 2

    scored = [
        (sum(math.log(1e6 / count) for count in counts), line) for line in lines if relevant(counts := held(line))
    ]
    scored.sort(key=lambda pair: (pair[0], pair[1].id), reverse=True)
    return [line for _, line in scored[:limit]]


async def recall_lines(
    db: aiosqlite.Connection,
    platform: str,
    channel_id: str,
    user_id: str,
    terms: Sequence[str],
    *,
    before_id: int,
    limit: int,
    about_speaker: bool = False,
    place: str | None = None,
) -> list[RecalledLine]:
    """The speaker's best-matching lines anywhere on ``platform`` that may be shown in ``place``,
    then other viewers' in the channel.

    ``about_speaker``: the question is about the speaker ("what car do I drive?"), so any of their
    own lines sharing a word counts.
    """
    terms = list(dict.fromkeys(fold_word(term) for term in terms))  # "colour" and "color" are one term
    if not terms or limit <= 0:
        return []
    search = await _search_for(db, platform, user_id, terms)
    if not search.lines_with:
        return []
    words = " OR ".join(_any_spelling(term) for term in search.lines_with)
    user_row = search.user_row
    own = await _speakers_newest(db, user_row, words, before_id, place) if user_row is not None else []
    others = await _channels_newest(db, platform, channel_id, user_row, words, before_id)
    return _best(own, search, limit, own=True, lenient=about_speaker) + _best(others, search, limit, own=False)


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)
