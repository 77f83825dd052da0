"""SQLite memory through aiosqlite: WAL, numbered migrations on open, one transaction per turn.

Every chat line is committed before the caller acts on it, so a crash after an acknowledgement
loses nothing. ``synchronous=NORMAL`` in WAL mode survives a killed process (not a power cut),
which is the trade a chat bot wants.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import aiosqlite

from memory.errors import DatabaseUnavailable, MemoryStoreError, translate
from memory.files import create_private, ensure_writable
from memory.forget import redact_names, replies_repeating, stored_names
from memory.group_commit import GroupCommit
from memory.migrations import MIGRATIONS, Migration
from memory.recall import recall_lines
from memory.records import NO_VIEWER, ForgetResult, IncomingLine, Note, RecalledLine, StoredMessage, Summary, UserRecord
from memory.scopes import UNKNOWN_PLACE, line_place, visible_in_sql, within_sql
from memory.vectors import (
    HELD_ROWS,
    ChannelVectors,
    LineVector,
    NoteVector,
    Vector,
    VectorSpace,
    insert_line_vectors,
    insert_note_vectors,
    nearest_lines,
    nearest_notes,
    space_id,
)

__all__ = ["SqliteMemoryStore"]

_MESSAGE_COLUMNS = (
    "m.id, m.platform, m.channel_id, COALESCE(u.platform_user_id, ''), m.author_name, m.text,"
    " m.is_character, m.persona_id, m.created_at, m.platform_message_id, m.reply_to_id, m.from_moderator"
)


P = ParamSpec("P")
R = TypeVar("R")


def _translated(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """SQLite errors leave memory as :class:`MemoryStoreError`, naming what was being done."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except sqlite3.Error as exc:
            store = args[0]
            assert isinstance(store, SqliteMemoryStore)
            raise translate(method.__name__.replace("_", " "), exc, store.path) from exc

    return wrapper


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def _message(row: sqlite3.Row | tuple[Any, ...]) -> StoredMessage:
    return StoredMessage(
        id=row[0],
        platform=row[1],
        channel_id=row[2],
        author_id=row[3],
        author_name=row[4],
        text=row[5],
        is_character=bool(row[6]),
        persona_id=row[7],
        created_at=_parse(row[8]),
        platform_message_id=row[9],
        reply_to_id=row[10],
        from_moderator=bool(row[11]),
    )


class SqliteMemoryStore:
    """Open with ``await SqliteMemoryStore.open(path)``; close with ``await store.close()``."""

    def __init__(
        self,
        connection: aiosqlite.Connection,
        path: Path,
        *,
        max_waiting_lines: int = 10_000,
        write_patience_s: float = 120.0,
        vectors_held: int = HELD_ROWS,
    ) -> None:
        self._db = connection
        self.path = path
        # aiosqlite serialises statements, but a turn is several statements: keep turns whole.
        self._write_lock = asyncio.Lock()
        self._vector_space: tuple[int, VectorSpace] | None = None  # (row id, space) once use_vector_space ran
        self._channel_vectors = ChannelVectors(rows=vectors_held)
        self._lines: GroupCommit[IncomingLine, UserRecord] = GroupCommit(
            self._write_lines, self._translate_batch_error, max_waiting=max_waiting_lines, patience_s=write_patience_s
        )

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        busy_timeout_s: float = 5.0,
        max_waiting_lines: int = 10_000,
        write_patience_s: float = 120.0,
        vectors_held: int = HELD_ROWS,
    ) -> SqliteMemoryStore:
        """Open (creating, mode 0600) and migrate the database; refuse one this process cannot write.

        ``busy_timeout_s``: how long a statement waits for another program's write lock.
        ``max_waiting_lines`` and ``write_patience_s``: how many chat lines may wait for the
        database in an outage (a lock, a full disk), and for how long, before they are refused.
        ``vectors_held``: how many line vectors of searched channels stay in memory (``ChannelVectors``).
        """
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseUnavailable(
                f"cannot create the folder for the memory database {path}: {exc.strerror}"
            ) from exc
        ensure_writable(path)
        create_private(path)
        try:
            connection = await aiosqlite.connect(path, isolation_level=None)
            await connection.execute("PRAGMA journal_mode=WAL")
            await connection.execute("PRAGMA synchronous=NORMAL")
            await connection.execute("PRAGMA foreign_keys=ON")
            await connection.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            # Deleted rows are overwritten with zeros, so forgetting a user leaves no trace in the file.
            await connection.execute("PRAGMA secure_delete=ON")
            store = cls(
                connection,
                path,
                max_waiting_lines=max_waiting_lines,
                write_patience_s=write_patience_s,
                vectors_held=vectors_held,
            )
            await store._migrate(MIGRATIONS)
        except sqlite3.DatabaseError as exc:
            raise DatabaseUnavailable(f"cannot open the memory database {path}: {exc}") from exc
        return store

    async def close(self) -> None:
        await self._lines.close()
        await self._db.close()

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        """One write transaction; on failure the original error is the one that leaves.

        SQLite ends the transaction itself when a COMMIT fails for a full disk, and a ROLLBACK
        after that would fail with "no transaction is active", hiding why: roll back only what
        is still open, and never let the rollback's own error replace the first one.
        """
        await self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            await self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    await self._db.execute("ROLLBACK")
            raise

    async def __aenter__(self) -> SqliteMemoryStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- migrations -------------------------------------------------------------------------

    async def _migrate(self, migrations: Iterable[Migration]) -> None:
        await self._db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        async with self._db.execute("SELECT version FROM schema_migrations") as cursor:
            applied = {row[0] async for row in cursor}
        for migration in sorted(migrations, key=lambda m: m.version):
            if migration.version in applied:
                continue
            # executescript would COMMIT on its own; run statements inside one explicit transaction.
            async with self._transaction():
                for statement in _split_sql(migration.sql):
                    await self._db.execute(statement)
                await self._db.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, _iso(datetime.now(UTC))),
                )

    async def schema_version(self) -> int:
        async with self._db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    # -- writing a turn ---------------------------------------------------------------------

    async def record_message(self, event: IncomingLine) -> UserRecord:
        """Store a viewer's line and count it for its author; returns once it is committed.

        Lines arriving together are committed together (group commit): a chat flood costs one
        round trip to the database thread per batch instead of five per line. A line whose
        platform message id is already stored (EventSub delivers at least once) is not stored or
        counted again: its record says ``redelivered``. While another program holds the database or the disk
        is full, the line waits (see :mod:`memory.group_commit`); :class:`MemoryBackedUp` when
        too many already wait.
        """
        return await self._lines.submit(event)

    def lines_waiting(self) -> int:
        """Viewers' lines given to :meth:`record_message` and not yet committed."""
        return self._lines.waiting

    def _translate_batch_error(self, exc: Exception) -> MemoryStoreError:
        if isinstance(exc, sqlite3.Error):
            return translate("could not store chat lines", exc, self.path)
        return MemoryStoreError(f"could not store chat lines: {exc}")

    async def _write_lines(self, events: list[IncomingLine]) -> list[UserRecord]:
        async with self._write_lock:
            return await self._write_batch(events)

    async def _write_batch(self, events: list[IncomingLine]) -> list[UserRecord]:
        # One round trip to the database thread for the whole batch: each await on the event loop
        # waits behind every line the loop has ready, so a flood's next batch used to wait for the
        # previous batch's lines to be judged before it could start (see _in_database_thread).
        return await self._in_database_thread(_write_batch_now, events)

    async def _in_database_thread(
        self, work: Callable[[sqlite3.Connection, list[IncomingLine]], list[UserRecord]], events: list[IncomingLine]
    ) -> list[UserRecord]:
        """Run ``work`` on aiosqlite's own thread with its connection (the only thread that may use it).

        aiosqlite has no public call for this; ``Connection._execute`` is how its own methods queue
        work (checked with aiosqlite 0.22). Every test that stores a line goes through here.
        ``work`` runs while aiosqlite still holds the previous call's cursor, so no call may leave a
        statement that writes half-read (a checkpoint, an ``INSERT ... RETURNING``): read its rows.
        """
        queue_work: Callable[..., Awaitable[list[UserRecord]]] = self._db._execute
        connection = self._db._conn
        return await queue_work(work, connection, events)

    @_translated
    async def record_reply(
        self,
        answered: IncomingLine,
        *,
        persona_id: str,
        persona_name: str,
        text: str,
        platform_message_id: str | None = None,
    ) -> int:
        """Store what the character said in answer to ``answered``; returns the row id."""
        async with self._write_lock:
            cursor = await self._db.execute(
                "INSERT INTO messages (platform, channel_id, server_id, platform_message_id, user_id, author_name,"
                " is_character, persona_id, text, created_at, reply_to_id, scope)"
                " VALUES (?, ?, ?, ?, NULL, ?, 1, ?, ?, ?, ?, ?)",
                (
                    answered.platform,
                    answered.channel_id,
                    answered.server_id,
                    platform_message_id,
                    persona_name,
                    persona_id,
                    text,
                    _iso(datetime.now(UTC)),
                    answered.message_id,
                    line_place(answered),
                ),
            )
            return int(cursor.lastrowid or 0)

    @_translated
    async def set_platform_message_id(self, row_id: int, platform_message_id: str) -> None:
        async with self._write_lock:
            await self._db.execute(
                "UPDATE messages SET platform_message_id = ? WHERE id = ?", (platform_message_id, row_id)
            )

    @_translated
    async def set_review(self, row_id: int, review: str, *, text: str, draft: str | None) -> None:
        """What the streamer decided on a held reply (approved / edited / dropped / stale); an edit
        keeps the model's own text as ``draft`` and stores the sent text."""
        async with self._write_lock:
            await self._db.execute(
                "UPDATE messages SET review = ?, draft = ?, text = ? WHERE id = ? AND is_character = 1",
                (review, draft, text, row_id),
            )

    @_translated
    async def set_muted(self, scope: str, muted: bool) -> None:
        """Keep a mute (``scope``: "*", a platform or a channel key) across restarts, or lift it."""
        async with self._write_lock:
            if muted:
                await self._db.execute(
                    "INSERT OR IGNORE INTO mutes (scope, muted_at) VALUES (?, ?)", (scope, _iso(datetime.now(UTC)))
                )
            else:
                await self._db.execute("DELETE FROM mutes WHERE scope = ?", (scope,))

    @_translated
    async def muted_scopes(self) -> list[str]:
        async with self._db.execute("SELECT scope FROM mutes ORDER BY scope") as cursor:
            return [str(row[0]) for row in await cursor.fetchall()]

    @_translated
    async def cut_reply(self, row_id: int, text: str) -> None:
        """A stored reply of the character's becomes ``text``: what it said before it was cut off."""
        async with self._write_lock:
            await self._db.execute("UPDATE messages SET text = ? WHERE id = ? AND is_character = 1", (text, row_id))

    # -- reading ----------------------------------------------------------------------------

    @_translated
    async def recent_messages(
        self, platform: str, channel_id: str, *, limit: int, after_id: int = 0, upto_id: int | None = None
    ) -> list[StoredMessage]:
        """The channel's last ``limit`` lines with ``after_id < id <= upto_id``, oldest first."""
        query = (
            f"SELECT {_MESSAGE_COLUMNS} FROM messages m LEFT JOIN users u ON u.id = m.user_id"
            " WHERE m.platform = ? AND m.channel_id = ? AND m.id > ? AND m.id <= ?"
            # A held reply the streamer dropped (or that went stale) was never said: not history.
            " AND (m.review IS NULL OR m.review IN ('approved', 'edited'))"
            " ORDER BY m.id DESC LIMIT ?"
        )
        params = (platform, channel_id, after_id, upto_id if upto_id is not None else 2**62, limit)
        async with self._db.execute(query, params) as cursor:
            rows = await cursor.fetchall()
        return [_message(row) for row in reversed(list(rows))]

    @_translated
    async def message_id_for(self, platform: str, platform_message_id: str) -> int | None:
        async with self._db.execute(
            "SELECT id FROM messages WHERE platform = ? AND platform_message_id = ? ORDER BY id DESC LIMIT 1",
            (platform, platform_message_id),
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else None

    @_translated
    async def message_by_platform_id(self, platform: str, platform_message_id: str) -> StoredMessage | None:
        async with self._db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages m LEFT JOIN users u ON u.id = m.user_id"
            " WHERE m.platform = ? AND m.platform_message_id = ? ORDER BY m.id DESC LIMIT 1",
            (platform, platform_message_id),
        ) as cursor:
            row = await cursor.fetchone()
        return _message(row) if row else None

    @_translated
    async def count_messages(self, platform: str | None = None, channel_id: str | None = None) -> int:
        query, params = "SELECT COUNT(*) FROM messages WHERE 1=1", list[str]()
        if platform is not None:
            query, params = query + " AND platform = ?", [*params, platform]
        if channel_id is not None:
            query, params = query + " AND channel_id = ?", [*params, channel_id]
        async with self._db.execute(query, params) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    @_translated
    async def get_user(self, platform: str, user_id: str) -> UserRecord | None:
        async with self._db.execute(
            "SELECT display_name, first_seen, last_seen, message_count FROM users"
            " WHERE platform = ? AND platform_user_id = ?",
            (platform, user_id),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        return UserRecord(platform, user_id, row[0], _parse(row[1]), _parse(row[2]), row[3])

    @_translated
    async def search_users(self, text: str, *, limit: int = 20) -> list[UserRecord]:
        """Viewers whose name or platform id contains ``text`` (any case), most recently seen first."""
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        async with self._db.execute(
            "SELECT platform, platform_user_id, display_name, first_seen, last_seen, message_count FROM users"
            " WHERE display_name LIKE ? ESCAPE '\\' OR platform_user_id LIKE ? ESCAPE '\\'"
            " ORDER BY last_seen DESC LIMIT ?",
            (pattern, pattern, limit),
        ) as cursor:
            rows = await cursor.fetchall()
        return [UserRecord(row[0], row[1], row[2], _parse(row[3]), _parse(row[4]), row[5]) for row in rows]

    @_translated
    async def viewer_lines(self, platform: str, user_id: str, *, limit: int) -> list[StoredMessage]:
        """A viewer's newest lines with where and when they were said, newest first."""
        async with self._db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.user_id"
            " WHERE u.platform = ? AND u.platform_user_id = ? ORDER BY m.id DESC LIMIT ?",
            (platform, user_id, limit),
        ) as cursor:
            return [_message(row) for row in await cursor.fetchall()]

    # -- notes ------------------------------------------------------------------------------

    @_translated
    async def add_note(
        self,
        platform: str,
        user_id: str,
        text: str,
        persona_id: str | None = None,
        *,
        kind: str = "manual",
        source_message_id: int | None = None,
        keep_at_most: int | None = None,
        noted_at: datetime | None = None,
        place: str = UNKNOWN_PLACE,
        topic: str | None = None,
    ) -> bool:
        """Remember ``text`` about a viewer; False when the same note is already there (in that place).

        ``noted_at`` is when it was said (default now). With ``keep_at_most``, the oldest notes of
        the same kind go once there are more. ``place`` is where it was said (:mod:`memory.scopes`);
        a note whose place is not given is shown only to the viewer and in their DMs.
        ``topic``: see :class:`~memory.records.Note`.
        """
        when = _iso(noted_at or datetime.now(UTC))
        async with self._write_lock, self._transaction():
            user_row, added = await self._insert_note(
                platform, user_id, text, persona_id, kind, source_message_id, when, place, topic
            )
            if added and keep_at_most is not None:
                await self._db.execute(
                    "DELETE FROM notes WHERE kind = ? AND user_id = ? AND id NOT IN"
                    " (SELECT id FROM notes WHERE kind = ? AND user_id = ? ORDER BY id DESC LIMIT ?)",
                    (kind, user_row, kind, user_row, keep_at_most),
                )
        return added

    async def _insert_note(
        self,
        platform: str,
        user_id: str,
        text: str,
        persona_id: str | None,
        kind: str,
        source: int | None,
        when: str,
        place: str,
        topic: str | None,
    ) -> tuple[int, bool]:
        """The user's row, and whether the note was new (an equal note in its place is not stored twice)."""
        async with self._db.execute(
            "SELECT u.id, EXISTS (SELECT 1 FROM notes n WHERE n.user_id = u.id AND lower(n.text) = lower(?)"
            " AND n.scope = ?) FROM users u WHERE u.platform = ? AND u.platform_user_id = ?",
            (text, place, platform, user_id),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise MemoryStoreError(f"no user {user_id!r} on {platform} to attach a note to")
        if row[1]:
            return row[0], False
        await self._db.execute(
            "INSERT INTO notes (user_id, persona_id, text, created_at, kind, source_message_id, scope, topic)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (row[0], persona_id, text, when, kind, source, place, topic),
        )
        return row[0], True

    @_translated
    async def notes_for(
        self,
        platform: str,
        user_id: str,
        persona_id: str | None = None,
        *,
        seen_in: str | None = None,
        within: str | None = None,
    ) -> list[Note]:
        """A viewer's notes, oldest first: every persona's shared notes and ``persona_id``'s own.

        ``seen_in``: only those that may be shown in a conversation in that place (a prompt);
        ``within``: only those said within that server or channel (a moderator's look-up);
        neither: all of them (the viewer's own look-up). See :mod:`memory.scopes`.
        """
        query = (
            "SELECT n.id, n.text, n.created_at, n.kind, n.source_message_id, n.scope, n.topic FROM notes n"
            " JOIN users u ON u.id = n.user_id WHERE u.platform = ? AND u.platform_user_id = ?"
            " AND (n.persona_id IS NULL OR ? IS NULL OR n.persona_id = ?)"
        )
        parameters: list[object] = [platform, user_id, persona_id, persona_id]
        if seen_in is not None:
            query += f" AND {visible_in_sql('n.scope')}"
            parameters += [seen_in] * 3
        if within is not None:
            query += f" AND {within_sql('n.scope')}"
            parameters += [within] * 3
        async with self._db.execute(query + " ORDER BY n.id", parameters) as cursor:
            return [Note(row[0], row[1], _parse(row[2]), row[3], row[4], row[5], row[6]) async for row in cursor]

    @_translated
    async def lines_by_user(self, platform: str, user_id: str, *, limit: int, place: str | None = None) -> list[str]:
        """A viewer's newest lines, oldest first (for reflection); with ``place``, only those said there."""
        async with self._db.execute(
            "SELECT text FROM (SELECT m.id, m.text FROM messages m JOIN users u ON u.id = m.user_id"
            " WHERE u.platform = ? AND u.platform_user_id = ? AND (? IS NULL OR m.scope = ?)"
            " ORDER BY m.id DESC LIMIT ?) ORDER BY id",
            (platform, user_id, place, place, limit),
        ) as cursor:
            return [row[0] async for row in cursor]

    @_translated
    async def delete_note(self, platform: str, note_id: int, *, within: str | None = None) -> bool:
        """Delete one note (a moderator's call); False when there is no such note on ``platform``
        (or, with ``within``, none said within that server or channel)."""
        query = "DELETE FROM notes WHERE id = ? AND user_id IN (SELECT id FROM users WHERE platform = ?)"
        parameters: list[object] = [note_id, platform]
        if within is not None:
            query += f" AND {within_sql('scope')}"
            parameters += [within] * 3
        async with self._write_lock:
            cursor = await self._db.execute(query, parameters)
            await self._checkpoint_and_truncate()
        return cursor.rowcount > 0

    # -- recall -----------------------------------------------------------------------------

    @_translated
    async def recall(
        self,
        platform: str,
        channel_id: str,
        user_id: str,
        terms: list[str],
        *,
        before_id: int,
        limit: int,
        about_speaker: bool = False,
        place: str | None = None,
    ) -> list[RecalledLine]:
        """Viewers' lines older than ``before_id`` that best match ``terms`` (see :mod:`memory.recall`).

        The speaker's own lines from anywhere on the platform that may be shown in ``place`` (the
        conversation's, :mod:`memory.scopes`; None: anywhere) come first, then other viewers'
        lines in this channel; at most ``limit`` of each.
        """
        return await recall_lines(
            self._db,
            platform,
            channel_id,
            user_id,
            terms,
            before_id=before_id,
            limit=limit,
            about_speaker=about_speaker,
            place=place,
        )

    # -- vectors (recall by meaning) ---------------------------------------------------------

    @_translated
    async def use_vector_space(self, space: VectorSpace) -> None:
        """Store and search vectors of ``space`` (the embedder in use) from now on.

        Vectors of another space stay stored but are never compared with this one's.
        """
        async with self._write_lock, self._transaction():
            self._vector_space = (await space_id(self._db, space), space)

    def _space(self) -> tuple[int, VectorSpace]:
        if self._vector_space is None:
            raise MemoryStoreError("no vector space chosen: call use_vector_space(space) first")
        return self._vector_space

    @_translated
    async def add_vectors(self, rows: Sequence[LineVector]) -> int:
        """Store viewers' lines' vectors in one transaction; how many lines were still there to take one."""
        space, chosen = self._space()
        if not rows:
            return 0
        async with self._write_lock, self._transaction():
            stored = await insert_line_vectors(self._db, space, chosen.dimensions, rows)
        self._channel_vectors.added(space, stored)
        return len(stored)

    def held_vectors_fill(self) -> tuple[int, int]:
        """(rows, row capacity) of the channels' vectors held in memory (:class:`ChannelVectors`)."""
        return self._channel_vectors.fill()

    @_translated
    async def add_note_vectors(self, rows: Sequence[NoteVector]) -> int:
        """Store notes' vectors in one transaction; how many notes were still there to take one."""
        space, chosen = self._space()
        if not rows:
            return 0
        async with self._write_lock, self._transaction():
            return await insert_note_vectors(self._db, space, chosen.dimensions, rows)

    @_translated
    async def count_vectors(self) -> int:
        """Lines with a vector of the chosen space (benchmarks; 0 before use_vector_space)."""
        if self._vector_space is None:
            return 0
        async with self._db.execute(
            "SELECT count(*) FROM message_vectors WHERE space = ?", (self._vector_space[0],)
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    @_translated
    async def nearest_lines(
        self,
        platform: str,
        channel_id: str,
        user_id: str,
        query_vector: Vector,
        *,
        own_only: bool,
        before_id: int,
        limit: int,
        place: str | None = None,
    ) -> list[tuple[RecalledLine, float]]:
        """Lines older than ``before_id`` nearest in meaning to ``query_vector``, best first, with cosine.

        ``own_only``: the speaker's own lines anywhere on the platform that may be shown in ``place``
        (their newest :data:`memory.vectors.OWN_SCAN`; a DM's lines stay out of public prompts, as
        in :meth:`recall`); otherwise other viewers' lines among the channel's newest
        :data:`memory.vectors.CHANNEL_SCAN` embedded ones. [] before :meth:`use_vector_space`.
        """
        if self._vector_space is None or limit <= 0:
            return []
        return await nearest_lines(
            self._db,
            self._channel_vectors,
            self._vector_space[0],
            platform,
            channel_id,
            user_id,
            query_vector,
            own_only=own_only,
            before_id=before_id,
            limit=limit,
            place=place,
        )

    @_translated
    async def nearest_notes(
        self,
        platform: str,
        user_id: str,
        query_vector: Vector,
        *,
        persona_id: str | None = None,
        seen_in: str | None = None,
        limit: int,
    ) -> list[tuple[Note, float]]:
        """The viewer's notes nearest in meaning to ``query_vector``, best first, with cosine;
        ``seen_in`` as in :meth:`notes_for` (only those that may be shown in that place)."""
        if self._vector_space is None or limit <= 0:
            return []
        return await nearest_notes(
            self._db,
            self._vector_space[0],
            platform,
            user_id,
            query_vector,
            persona_id=persona_id,
            seen_in=seen_in,
            limit=limit,
        )

    # -- forgetting -------------------------------------------------------------------------

    @_translated
    async def forget_user(self, platform: str, user_id: str) -> ForgetResult:
        """Delete a user's lines, the character's replies to them, their notes and their record;
        also the character's replies that repeated what they said, and their name in others' rows
        (:mod:`memory.forget`); with them their lines' and notes' vectors, in the file and in memory."""
        self._channel_vectors.clear()
        async with self._write_lock:
            async with self._transaction():
                params = (platform, user_id)
                user_clause = "SELECT id FROM users WHERE platform = ? AND platform_user_id = ?"
                user_row, names, repeating = await self._traces_of(platform, user_id)
                # Summaries of their channels quote names and lines; they are rebuilt as chat goes on.
                await self._db.execute(
                    "DELETE FROM summaries WHERE (platform, channel_id) IN"
                    f" (SELECT DISTINCT platform, channel_id FROM messages WHERE user_id IN ({user_clause}))",
                    params,
                )
                replies = await self._db.execute(
                    "DELETE FROM messages WHERE is_character = 1 AND platform = ? AND reply_to_id IN"
                    f" (SELECT platform_message_id FROM messages WHERE user_id IN ({user_clause}))",
                    (platform, *params),
                )
                lines = await self._db.execute(f"DELETE FROM messages WHERE user_id IN ({user_clause})", params)
                notes = await self._db.execute(f"DELETE FROM notes WHERE user_id IN ({user_clause})", params)
                users = await self._db.execute("DELETE FROM users WHERE platform = ? AND platform_user_id = ?", params)
                redacted = await redact_names(self._db, platform, user_row, names) if user_row is not None else 0
                # Who chose a channel's persona is kept by platform id; a forgotten viewer's goes.
                await self._db.execute(
                    "UPDATE persona_choices SET set_by = NULL WHERE platform = ? AND set_by = ?", params
                )
                # FTS5 before 3.44 deletes by adding markers; merging every segment into one drops
                # the deleted lines' terms from the index pages (secure_delete then zeroes them).
                await self._db.execute("INSERT INTO messages_fts (messages_fts) VALUES ('optimize')")
            # The WAL still holds the old pages until a checkpoint; truncate it so they are gone too.
            await self._checkpoint_and_truncate()
        return ForgetResult(
            messages=lines.rowcount + replies.rowcount + repeating,
            notes=notes.rowcount,
            users=users.rowcount,
            redacted=redacted,
        )

    async def _checkpoint_and_truncate(self) -> None:
        """Copy the WAL into the file and empty it, so deleted rows' old pages are gone from both.

        Its result row is read: the statement writes, and left unfinished it would keep the
        next group commit's COMMIT from ending ("SQL statements in progress"), since aiosqlite's
        thread holds the last call's cursor until its next call returns (see _in_database_thread).
        """
        await self._db.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)")

    @_translated
    async def names_of(self, platform: str, user_id: str) -> list[str]:
        """Every name the user was stored under that a forget redacts (see :mod:`memory.forget`)."""
        async with self._db.execute(
            "SELECT id FROM users WHERE platform = ? AND platform_user_id = ?", (platform, user_id)
        ) as cursor:
            row = await cursor.fetchone()
        return await stored_names(self._db, int(row[0])) if row else []

    async def _traces_of(self, platform: str, user_id: str) -> tuple[int | None, list[str], int]:
        """The user's row, the names they were stored under, and how many of the character's
        replies that repeated them were deleted (inside the forget's transaction)."""
        async with self._db.execute(
            "SELECT id FROM users WHERE platform = ? AND platform_user_id = ?", (platform, user_id)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None, [], 0
        user_row = int(row[0])
        names = await stored_names(self._db, user_row)
        repeating = await replies_repeating(self._db, platform, user_row)
        for start in range(0, len(repeating), 500):  # SQLite caps bound parameters
            chunk = repeating[start : start + 500]
            await self._db.execute(f"DELETE FROM messages WHERE id IN ({', '.join('?' * len(chunk))})", chunk)
        return user_row, names, len(repeating)

    # -- persona per channel ----------------------------------------------------------------

    @_translated
    async def set_persona(self, platform: str, scope: str, scope_id: str, persona_id: str, set_by: str | None) -> None:
        async with self._write_lock:
            await self._db.execute(
                "INSERT INTO persona_choices (platform, scope, scope_id, persona_id, set_by, set_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (platform, scope, scope_id) DO UPDATE SET"
                " persona_id = excluded.persona_id, set_by = excluded.set_by, set_at = excluded.set_at",
                (platform, scope, scope_id, persona_id, set_by, _iso(datetime.now(UTC))),
            )

    @_translated
    async def persona_choice(self, platform: str, channel_id: str, server_id: str | None = None) -> str | None:
        """The channel's persona, else its server's, else None."""
        # One round trip (not execute, fetch, close): asked as a channel's first lines arrive, it is
        # queued before their batch and must not wait behind the whole batch for its next step.
        rows = await self._db.execute_fetchall(
            "SELECT persona_id FROM persona_choices WHERE platform = ? AND"
            " ((scope = 'channel' AND scope_id = ?) OR (scope = 'server' AND scope_id = ?))"
            " ORDER BY scope = 'channel' DESC LIMIT 1",
            (platform, channel_id, server_id or ""),
        )
        return next((str(row[0]) for row in rows), None)

    # -- summaries --------------------------------------------------------------------------

    @_translated
    async def save_summary(
        self, platform: str, channel_id: str, text: str, upto_message_id: int, persona_id: str | None
    ) -> None:
        async with self._write_lock:
            await self._db.execute(
                "INSERT INTO summaries (platform, channel_id, persona_id, text, upto_message_id, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (platform, channel_id, persona_id, text, upto_message_id, _iso(datetime.now(UTC))),
            )

    @_translated
    async def latest_summary(self, platform: str, channel_id: str) -> Summary | None:
        async with self._db.execute(
            "SELECT text, upto_message_id, created_at FROM summaries WHERE platform = ? AND channel_id = ?"
            " ORDER BY id DESC LIMIT 1",
            (platform, channel_id),
        ) as cursor:
            row = await cursor.fetchone()
        return Summary(platform, channel_id, row[0], row[1], _parse(row[2])) if row else None

    async def integrity_check(self) -> str:
        async with self._db.execute("PRAGMA integrity_check") as cursor:
            row = await cursor.fetchone()
        return str(row[0]) if row else "no answer"


# Each statement in two forms: over the whole batch as one JSON array (``json_each``), or per row.
_USERS_COLUMNS = "INSERT INTO users (platform, platform_user_id, display_name, first_seen, last_seen, message_count)"
_USERS_UPSERT = (
    " ON CONFLICT (platform, platform_user_id) DO UPDATE SET"
    " display_name = excluded.display_name, last_seen = excluded.last_seen, message_count = message_count + 1"
)
_USERS_ALL = (
    _USERS_COLUMNS
    + " SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[3]'), 1"
    " FROM json_each(?) WHERE true ORDER BY key" + _USERS_UPSERT
)
_USERS_ONE = _USERS_COLUMNS + " VALUES (?1, ?2, ?3, ?4, ?4, 1)" + _USERS_UPSERT
_LINES_COLUMNS = (
    "INSERT INTO messages (platform, channel_id, server_id, platform_message_id, user_id,"
    " author_name, is_character, text, created_at, reply_to_id, addressed, from_moderator, scope)"
)
_LINES_ALL = (
    _LINES_COLUMNS
    + " SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), json_extract(value, '$[3]'),"
    " (SELECT id FROM users WHERE platform = json_extract(value, '$[0]') AND platform_user_id = json_extract(value, '$[4]')),"
    " json_extract(value, '$[5]'), 0, json_extract(value, '$[6]'), json_extract(value, '$[7]'), json_extract(value, '$[8]'), json_extract(value, '$[9]'), json_extract(value, '$[10]'), json_extract(value, '$[11]')"
    " FROM json_each(?) WHERE true ORDER BY key ON CONFLICT DO NOTHING"  # the unique index guards another writer
)
_LINES_ONE = (
    _LINES_COLUMNS + " VALUES (?1, ?2, ?3, ?4, (SELECT id FROM users WHERE platform = ?1 AND platform_user_id = ?5),"
    " ?6, 0, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT DO NOTHING"
)


def _write_batch_now(db: sqlite3.Connection, events: list[IncomingLine]) -> list[UserRecord]:
    """Store a batch of viewers' lines in one transaction (on the database thread); each line's record.

    Each statement takes the whole batch as one JSON array and returns at most one row, so the
    thread gives up Python's GIL once per statement while SQLite works (the lines' full-text
    indexing is most of it), not once per line: taking the GIL back after each line meant waiting
    for the event loop's turn each time, and a batch written while the loop judged the previous
    one took many times longer. SQLite's JSON functions end a string at a NUL character, so a
    batch that holds one is written a row at a time, as the text was given.
    """
    whole = not any(_holds_nul(event) for event in events)
    db.execute("BEGIN IMMEDIATE")
    try:
        redelivered = _already_stored(db, events, whole=whole)
        fresh = [e for index, e in enumerate(events) if index not in redelivered]
        sent = [_iso(e.sent_at) for e in fresh]
        users = [
            (e.platform, e.author_id, e.author_name, at)
            for e, at in zip(fresh, sent, strict=True)
            if e.author_id != NO_VIEWER  # an anonymous gift is nobody's line: no user row
        ]
        lines = [
            (
                e.platform,
                e.channel_id,
                e.server_id,
                e.message_id,
                e.author_id,
                e.author_name,
                e.text,
                at,
                e.reply_to_id,
                int(e.addresses_bot),
                int(e.is_moderator),
                line_place(e),
            )
            for e, at in zip(fresh, sent, strict=True)
        ]
        if whole:
            db.execute(_USERS_ALL, (_as_json(users),))
            db.execute(_LINES_ALL, (_as_json(lines),))
        else:
            db.executemany(_USERS_ONE, users)
            db.executemany(_LINES_ONE, lines)
        records = _users_after_batch(db, events, whole=whole)
        db.execute("COMMIT")
    except BaseException:
        # As _transaction: SQLite may have ended the transaction itself (a full disk at COMMIT);
        # roll back only what is still open, and never let the rollback's error hide the first.
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise
    return _records_per_event(events, records, redelivered)


def _holds_nul(event: IncomingLine) -> bool:
    given = (event.platform, event.channel_id, event.message_id, event.author_id, event.author_name, event.text)
    return any("\x00" in value for value in (*given, event.server_id or "", event.reply_to_id or ""))


def _as_json(rows: Iterable[Any]) -> str:
    # Not ASCII-escaped: text Python cannot hand to SQLite (a lone surrogate) fails the statement,
    # as binding it would, and the group commit finds that line by splitting the batch.
    return json.dumps(list(rows), ensure_ascii=False)


def _already_stored(db: sqlite3.Connection, events: list[IncomingLine], *, whole: bool) -> set[int]:
    """Positions of lines whose platform message id is stored already, or earlier in ``events``."""
    seen: set[tuple[str, str]] = set()
    ids_by_platform: dict[str, set[str]] = {}
    for event in events:
        if event.message_id:
            ids_by_platform.setdefault(event.platform, set()).add(event.message_id)
    for platform, ids in ids_by_platform.items():
        if whole:
            (found,) = db.execute(
                "SELECT json_group_array(platform_message_id) FROM messages WHERE is_character = 0"
                " AND platform = ? AND platform_message_id IN (SELECT value FROM json_each(?))",
                (platform, _as_json(sorted(ids))),
            ).fetchone()
            seen.update((platform, message_id) for message_id in json.loads(found))
            continue
        ordered = sorted(ids)
        for start in range(0, len(ordered), 500):  # SQLite caps bound parameters
            chunk = ordered[start : start + 500]
            rows = db.execute(
                "SELECT platform_message_id FROM messages WHERE is_character = 0 AND platform = ?"
                f" AND platform_message_id IN ({', '.join('?' * len(chunk))})",
                [platform, *chunk],
            )
            seen.update((platform, row[0]) for row in rows)
    repeated = set()
    for index, event in enumerate(events):
        key = (event.platform, event.message_id)
        if event.message_id and key in seen:
            repeated.add(index)
        seen.add(key)
    return repeated


def _users_after_batch(
    db: sqlite3.Connection, events: list[IncomingLine], *, whole: bool
) -> dict[tuple[str, str], tuple[Any, ...]]:
    keys = sorted({(e.platform, e.author_id) for e in events if e.author_id != NO_VIEWER})
    columns = "platform, platform_user_id, display_name, first_seen, last_seen, message_count"
    if whole:
        (found,) = db.execute(
            f"SELECT json_group_array(json_array({columns})) FROM json_each(?) AS wanted JOIN users"
            " ON users.platform = json_extract(wanted.value, '$[0]') AND users.platform_user_id = json_extract(wanted.value, '$[1]')",
            (_as_json(keys),),
        ).fetchone()
        return {(row[0], row[1]): tuple(row[2:]) for row in json.loads(found)}
    users: dict[tuple[str, str], tuple[Any, ...]] = {}
    for start in range(0, len(keys), 400):  # SQLite caps bound parameters; 400 pairs is well under
        chunk = keys[start : start + 400]
        where = " OR ".join(["(platform = ? AND platform_user_id = ?)"] * len(chunk))
        for row in db.execute(f"SELECT {columns} FROM users WHERE {where}", [value for key in chunk for value in key]):
            users[(row[0], row[1])] = tuple(row[2:])
    return users


def _records_per_event(
    events: list[IncomingLine], users: dict[tuple[str, str], tuple[Any, ...]], redelivered: set[int]
) -> list[UserRecord]:
    """Each line's view of its author: the count as it stood right after that line."""
    remaining: dict[tuple[str, str], int] = {}
    for index, event in enumerate(events):
        key = (event.platform, event.author_id)
        remaining[key] = remaining.get(key, 0) + (index not in redelivered)
    records = []
    for index, event in enumerate(events):
        key = (event.platform, event.author_id)
        again = index in redelivered
        if event.author_id == NO_VIEWER:  # no user row: nobody to count
            at = event.sent_at
            records.append(UserRecord(event.platform, NO_VIEWER, event.author_name, at, at, 0, redelivered=again))
            continue
        _name, first_seen, last_seen, final_count = users[key]
        remaining[key] -= not again
        records.append(
            UserRecord(
                event.platform,
                event.author_id,
                event.author_name,
                _parse(first_seen),
                _parse(last_seen),
                final_count - remaining[key],
                redelivered=again,
            )
        )
    return records


def _split_sql(script: str) -> list[str]:
    """Whole statements, so a trigger body's own semicolons stay inside its statement."""
    statements, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip())
            pending = ""
    return statements
