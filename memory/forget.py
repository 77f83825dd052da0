"""What a forget takes beyond the viewer's own rows: their name in others' lines, and the
character's replies that repeated what they said (the promise is in docs/memory.md#forgetting).

- **Names.** Every name the viewer was stored under (their record's and each of their lines')
  is replaced by :data:`REDACTED` wherever it stands as a whole word in a row they do not own: a
  follow welcome that listed them, a gifter's line naming them as recipient, another viewer's
  line or note. Names shorter than :data:`MIN_NAME_CHARS` are left: "Al" would take every "al".
- **What they said.** A word of theirs is one they said (three characters or more, not a stop
  word such as "and" or "what": :data:`memory.text.STOP_WORDS`) that no other viewer on the platform ever said and the character had not said in that channel before them:
  their cat's name, their secret number. A reply of the character in that channel, after they
  said it, holding such a word repeated them, whoever it answered: it is deleted.

Both run inside the forget's transaction, before the viewer's own rows go.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import aiosqlite

from memory.text import STOP_WORDS

__all__ = ["MIN_NAME_CHARS", "REDACTED", "name_pattern", "redact_names", "replies_repeating", "stored_names"]

REDACTED = "someone"
MIN_NAME_CHARS = 3
_WORD = re.compile(r"[^\W_]{3,}")
_WORD_CHARACTER = re.compile(r"[^\W_]")  # what recall searches by (engine.recall.terms), less the short numbers


def _words(text: str) -> set[str]:
    return {folded for word in _WORD.findall(text.replace("'", "")) if (folded := word.casefold()) not in STOP_WORDS}


async def stored_names(db: aiosqlite.Connection, user_row: int) -> list[str]:
    """Every name the viewer was stored under, longest first (so "Ann Lee" goes before "Ann")."""
    async with db.execute(
        "SELECT display_name FROM users WHERE id = ? UNION SELECT author_name FROM messages WHERE user_id = ?",
        (user_row, user_row),
    ) as cursor:
        names = {str(row[0]).strip() async for row in cursor}
    return sorted((name for name in names if len(name) >= MIN_NAME_CHARS), key=len, reverse=True)


def name_pattern(names: Iterable[str]) -> re.Pattern[str]:
    """Any of ``names`` as a whole word in any case, with or without "@": "@Ann" and "Ann," match,
    "Annabel" does not. The one rule for where a forgotten viewer is named (memory and the stage)."""
    alternatives = "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
    return re.compile(rf"(?<!\w)@?(?:{alternatives})(?!\w)", re.IGNORECASE)


def _like(name: str) -> str:
    return "%" + name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _phrase(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


async def _lines_naming(db: aiosqlite.Connection, platform: str, user_row: int, name: str) -> list[tuple[int, str]]:
    """Rows of the platform, not the viewer's, that may hold ``name`` (the regex decides).

    Viewers' lines are found through the recall index (the name as a phrase of its words, as the
    index tokenises it: milliseconds), the character's lines through their partial index and LIKE
    (case-insensitive for ASCII): a LIKE over every line took 0.17 s a name at 200,000 lines.
    """
    rows: list[tuple[int, str]] = []
    # CROSS JOIN keeps SQLite from walking every line of the platform and asking the index about
    # each (37 s a forget at 200,000 lines): the index's matches come first, then their rows.
    if _WORD_CHARACTER.search(name):
        query = (
            "SELECT m.id, m.text FROM messages_fts f CROSS JOIN messages m ON m.id = f.rowid"
            " WHERE messages_fts MATCH ? AND m.platform = ? AND m.user_id IS NOT ?"
        )
        parameters: tuple[object, ...] = ("text : " + _phrase(name), platform, user_row)
    else:  # nothing the index holds: only a scan can find it
        query = "SELECT id, text FROM messages WHERE platform = ? AND is_character = 0 AND user_id IS NOT ? AND text LIKE ? ESCAPE '\\'"
        parameters = (platform, user_row, _like(name))
    async with db.execute(query, parameters) as cursor:
        rows += [(row[0], row[1]) async for row in cursor]
    async with db.execute(
        "SELECT id, text FROM messages WHERE is_character = 1 AND platform = ? AND text LIKE ? ESCAPE '\\'",
        (platform, _like(name)),
    ) as cursor:
        rows += [(row[0], row[1]) async for row in cursor]
    return rows


async def redact_names(db: aiosqlite.Connection, platform: str, user_row: int, names: list[str]) -> int:
    """Replace the viewer's names in rows of the platform they do not own; how many rows changed.

    A viewer line's index entry follows its text through the update trigger of migration 10.
    """
    if not names:
        return 0
    pattern = name_pattern(names)
    changed = 0
    for name in names:
        changed += await _rewrite(db, "messages", await _lines_naming(db, platform, user_row, name), pattern)
        async with db.execute(
            "SELECT n.id, n.text FROM notes n JOIN users u ON u.id = n.user_id"
            " WHERE u.platform = ? AND n.user_id != ? AND n.text LIKE ? ESCAPE '\\'",
            (platform, user_row, _like(name)),
        ) as cursor:
            rows = [(row[0], row[1]) async for row in cursor]
        changed += await _rewrite(db, "notes", rows, pattern)
    return changed


async def _rewrite(db: aiosqlite.Connection, table: str, rows: list[tuple[int, str]], pattern: re.Pattern[str]) -> int:
    updates = [(redacted, row_id) for row_id, text in rows if (redacted := pattern.sub(REDACTED, text)) != text]
    if updates:
        await db.executemany(f"UPDATE {table} SET text = ? WHERE id = ?", updates)
    return len(updates)


async def replies_repeating(db: aiosqlite.Connection, platform: str, user_row: int) -> list[int]:
    """Ids of the character's replies, in the channels the viewer spoke in, that repeated a word
    only the viewer had said (see the module docstring).

    Reads the character's replies since the viewer's first line in each channel (through the
    partial index of migration 10), the viewer's lines, and for the few words that are candidates,
    the recall index and the character's earlier lines.
    """
    repeating: list[int] = []
    for channel_id, said_at in (await _first_said(db, user_row)).items():
        since = min(said_at.values())
        replies = await _replies_since(db, platform, channel_id, since, said_at)
        repeated = {word for row_id, words in replies for word in words if row_id > said_at[word]}
        its_own = {word for row_id, words in replies for word in words if row_id < said_at[word]}
        theirs = {
            word
            for word in await _said_by_nobody_else(db, platform, user_row, repeated - its_own)
            if not await _character_said_before(db, platform, channel_id, since, word)
        }
        repeating += [row_id for row_id, words in replies if any(row_id > said_at[word] for word in words & theirs)]
    return repeating


async def _first_said(db: aiosqlite.Connection, user_row: int) -> dict[str, dict[str, int]]:
    """Per channel, each word of the viewer's lines and the id of the line that first held it."""
    first_said: dict[str, dict[str, int]] = {}
    async with db.execute(
        "SELECT id, channel_id, text FROM messages WHERE user_id = ? ORDER BY id", (user_row,)
    ) as cursor:
        async for row_id, channel_id, text in cursor:
            said_at = first_said.setdefault(channel_id, {})
            for word in _words(text):
                said_at.setdefault(word, row_id)
    return first_said


_CHARACTER_LINES = "SELECT id, text FROM messages INDEXED BY messages_said_by_character WHERE is_character = 1"


async def _replies_since(
    db: aiosqlite.Connection, platform: str, channel_id: str, since: int, said_at: dict[str, int]
) -> list[tuple[int, set[str]]]:
    """The character's lines in the channel after row ``since`` that hold any of the words."""
    replies: list[tuple[int, set[str]]] = []
    async with db.execute(
        f"{_CHARACTER_LINES} AND platform = ? AND channel_id = ? AND id > ? ORDER BY id", (platform, channel_id, since)
    ) as cursor:
        async for row_id, text in cursor:
            shared = _words(text) & said_at.keys()
            if shared:
                replies.append((row_id, shared))
    return replies


async def _character_said_before(
    db: aiosqlite.Connection, platform: str, channel_id: str, before: int, word: str
) -> bool:
    """Whether the character said ``word`` in the channel before row ``before``: its own word."""
    async with db.execute(
        f"{_CHARACTER_LINES} AND platform = ? AND channel_id = ? AND id < ? AND text LIKE ? ESCAPE '\\'",
        (platform, channel_id, before, _like(word)),
    ) as cursor:
        return any([word in _words(text) async for _, text in cursor])


async def _said_by_nobody_else(db: aiosqlite.Connection, platform: str, user_row: int, words: set[str]) -> set[str]:
    """The words no other viewer's line on the platform holds (through the recall index)."""
    alone = set()
    for word in words:
        async with db.execute(
            "SELECT 1 FROM messages_fts f CROSS JOIN messages m ON m.id = f.rowid"
            " WHERE messages_fts MATCH ? AND m.user_id IS NOT ? AND m.platform = ? LIMIT 1",
            ("text : " + _phrase(word), user_row, platform),
        ) as cursor:
            if await cursor.fetchone() is None:
                alone.add(word)
    return alone
