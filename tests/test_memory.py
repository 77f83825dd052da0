"""SQLite memory: migrations on open, WAL, every line kept across restarts, forgetting is total."""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from engine.events import ChatEvent, Role
from memory import MemoryStore, SqliteMemoryStore
from memory.migrations import MIGRATIONS


def _line(text: str, author: str = "ann", channel: str = "c1", message_id: str | None = None) -> ChatEvent:
    extra: dict[str, Any] = {"message_id": message_id} if message_id else {}
    return ChatEvent(
        platform="twitch", channel_id=channel, author_id=author, author_name=author.title(), text=text, **extra
    )


async def test_open_applies_numbered_migrations_once_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    store = await SqliteMemoryStore.open(path)
    assert await store.schema_version() == MIGRATIONS[-1].version
    await store.close()
    store = await SqliteMemoryStore.open(path)  # re-opening must not re-apply anything
    await store.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        versions = [row[0] for row in raw.execute("SELECT version FROM schema_migrations")]
    assert versions == [migration.version for migration in MIGRATIONS]


async def test_a_database_from_an_older_version_is_migrated_and_keeps_its_lines(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    with sqlite3.connect(path) as raw:  # what version 1 wrote
        raw.executescript(MIGRATIONS[0].sql)
        raw.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        raw.execute("INSERT INTO schema_migrations VALUES (1, 'initial schema', '2026-01-01T00:00:00+00:00')")
        raw.execute(
            "INSERT INTO messages (platform, channel_id, author_name, text, created_at)"
            " VALUES ('twitch', 'c1', 'Ann', 'said before the upgrade', '2026-01-01T00:00:00+00:00')"
        )
    store = await SqliteMemoryStore.open(path)
    try:
        assert await store.schema_version() == MIGRATIONS[-1].version
        await store.record_message(replace(_line("mod line"), roles=frozenset({Role.MODERATOR})))
        old, new = await store.recent_messages("twitch", "c1", limit=10)
    finally:
        await store.close()
    assert (old.text, old.from_moderator) == ("said before the upgrade", False)
    assert (new.text, new.from_moderator) == ("mod line", True)


async def test_every_line_and_user_count_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    store = await SqliteMemoryStore.open(path)
    records = await asyncio.gather(*(store.record_message(_line(f"line {i}", f"user{i % 7}")) for i in range(200)))
    await store.close()
    assert sorted(record.message_count for record in records if record.user_id == "user0") == list(range(1, 30))
    store = await SqliteMemoryStore.open(path)
    try:
        assert await store.count_messages("twitch", "c1") == 200
        user = await store.get_user("twitch", "user3")
        assert user is not None and user.message_count == 29 and user.first_seen <= user.last_seen
        lines = await store.recent_messages("twitch", "c1", limit=5)
        assert [line.text for line in lines] == [f"line {i}" for i in range(195, 200)]
    finally:
        await store.close()


@pytest.mark.parametrize("odd_text", ["no odd character", "a NUL \x00 inside"])
async def test_a_batch_of_lines_is_stored_field_for_field_in_the_order_they_arrived(
    tmp_path: Path, odd_text: str
) -> None:
    # One group commit writes the whole batch as one statement per table (a row at a time when a
    # line holds a NUL, which SQLite's JSON would cut): every field must come back as the line
    # said it, with its type, and the ids must follow the arrival order.
    lines = [
        _line(odd_text, "odd"),
        replace(_line('quotes " and \\ and\na newline, ["not", 1] json', "12345"), reply_to_id="m-0"),
        replace(_line("emoji 🐸 and ünïcödé", "ann", channel="c2"), server_id="guild-7", addresses_bot=True),
        replace(_line("a moderator speaks", "mod", message_id="007"), roles=frozenset({Role.MODERATOR})),
        _line("ann again", "ann"),
        replace(_line("an anonymous gift", ""), author_name="Anonymous"),
    ]
    async with await SqliteMemoryStore.open(tmp_path / "m.sqlite3") as store:
        records = await asyncio.gather(*(store.record_message(line) for line in lines))
    assert [(r.user_id, r.message_count) for r in records] == [
        ("odd", 1),
        ("12345", 1),
        ("ann", 1),
        ("mod", 1),
        ("ann", 2),
        ("", 0),
    ]
    with sqlite3.connect(tmp_path / "m.sqlite3") as raw:
        stored = raw.execute(
            "SELECT m.channel_id, m.server_id, m.platform_message_id, u.platform_user_id, m.author_name, m.text,"
            " m.reply_to_id, m.addressed, m.from_moderator, typeof(m.platform_message_id), typeof(m.addressed)"
            " FROM messages AS m LEFT JOIN users AS u ON u.id = m.user_id ORDER BY m.id"
        ).fetchall()
        users = raw.execute("SELECT platform_user_id, display_name, message_count FROM users ORDER BY id").fetchall()
    assert stored == [
        (line.channel_id, line.server_id, line.message_id, line.author_id or None, line.author_name, line.text,
         line.reply_to_id, int(line.addresses_bot), int(line.is_moderator), "text", "integer")
        for line in lines
    ]  # fmt: skip
    assert users == [("odd", "Odd", 1), ("12345", "12345", 1), ("ann", "Ann", 2), ("mod", "Mod", 1)]


async def test_a_line_arriving_right_after_a_checkpoint_is_committed(tmp_path: Path) -> None:
    # Deleting a note and forgetting a viewer end with a WAL checkpoint, a statement that writes
    # and returns a row; left half-read, the next batch (written in one call on the database
    # thread) could not COMMIT and would wait out its patience instead of being stored.
    async with await SqliteMemoryStore.open(tmp_path / "m.sqlite3", write_patience_s=1.0) as store:
        await store.record_message(_line("hello", "ann"))
        note = await store.add_note("twitch", "ann", "likes cats")
        assert note
        notes = await store.notes_for("twitch", "ann")
        assert await store.delete_note("twitch", notes[0].id)
        await store.record_message(_line("after the note went", "ann"))
        await store.forget_user("twitch", "ann")
        await store.record_message(_line("after the forget", "bob"))
        assert await store.count_messages() == 1


async def test_first_message_of_a_user_is_marked_new(tmp_path: Path) -> None:
    async with await SqliteMemoryStore.open(tmp_path / "m.sqlite3") as store:
        first = await store.record_message(_line("hi", "newbie"))
        second = await store.record_message(_line("me again", "newbie"))
    assert first.is_new and not second.is_new


async def test_forget_removes_lines_replies_notes_and_the_user(tmp_path: Path) -> None:
    async with await SqliteMemoryStore.open(tmp_path / "m.sqlite3") as store:
        asked = _line("remember I like cats", "cat_fan", message_id="m-1")
        await store.record_message(asked)
        await store.record_message(_line("unrelated", "bystander"))
        await store.add_note("twitch", "cat_fan", "likes cats")
        await store.record_reply(asked, text="Cats, noted!", persona_id="pip", persona_name="Pip")
        result = await store.forget_user("twitch", "cat_fan")
        assert (result.messages, result.notes, result.users) == (2, 1, 1)
        assert await store.get_user("twitch", "cat_fan") is None
        assert [line.author_name for line in await store.recent_messages("twitch", "c1", limit=10)] == ["Bystander"]
    with sqlite3.connect(tmp_path / "m.sqlite3") as raw:
        dump = "\n".join(raw.iterdump())
    assert "cat_fan" not in dump and "likes cats" not in dump and "Cats, noted!" not in dump


async def test_persona_choice_falls_back_from_channel_to_server(tmp_path: Path) -> None:
    async with await SqliteMemoryStore.open(tmp_path / "m.sqlite3") as store:
        await store.set_persona("discord", "server", "guild-1", "captain-brine", "mod")
        assert await store.persona_choice("discord", "chan-9", "guild-1") == "captain-brine"
        await store.set_persona("discord", "channel", "chan-9", "pip", "mod")
        assert await store.persona_choice("discord", "chan-9", "guild-1") == "pip"
        assert await store.persona_choice("discord", "chan-8", None) is None


# -- at-least-once delivery -----------------------------------------------------------------------


async def test_a_redelivered_line_is_stored_and_counted_once(tmp_path: Path) -> None:
    async with await SqliteMemoryStore.open(tmp_path / "m.sqlite3") as store:
        first = await store.record_message(_line("hello", message_id="eventsub-1"))
        later = await store.record_message(_line("hello", message_id="eventsub-1"))
        # Twice in one group commit: the second copy is the redelivery.
        same_batch = await asyncio.gather(
            *(store.record_message(_line("again", message_id="eventsub-2")) for _ in "ab")
        )
        assert [first.redelivered, later.redelivered] == [False, True]
        assert [r.redelivered for r in same_batch] == [False, True]
        assert await store.count_messages() == 2
        user = await store.get_user("twitch", "ann")
        assert user is not None and user.message_count == 2


async def test_an_older_database_keeps_one_copy_of_each_line_stored_twice(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    async with await SqliteMemoryStore.open(path) as store:
        await store.record_message(_line("hello", message_id="eventsub-1"))
    with sqlite3.connect(path) as raw:  # what a version before the unique index could hold
        raw.execute("DROP INDEX messages_once_per_platform_id")
        raw.execute("DELETE FROM schema_migrations WHERE version >= 4")
        raw.execute("ALTER TABLE messages DROP COLUMN scope")  # added by migration 7
        raw.execute("ALTER TABLE notes DROP COLUMN scope")
        raw.execute("ALTER TABLE notes DROP COLUMN topic")  # added by migration 11
        raw.execute("ALTER TABLE messages DROP COLUMN review")  # added by migration 12
        raw.execute("ALTER TABLE messages DROP COLUMN draft")
        raw.execute("INSERT INTO messages (platform, channel_id, platform_message_id, author_name, text, created_at)"
                    " SELECT platform, channel_id, platform_message_id, author_name, text, created_at FROM messages")  # fmt: skip
        raw.execute("DROP INDEX messages_replies_by_line")
    async with await SqliteMemoryStore.open(path) as store:
        assert await store.count_messages() == 1
        assert (await store.record_message(_line("hello", message_id="eventsub-1"))).redelivered


async def test_forget_finds_the_replies_to_a_viewer_through_an_index(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    async with await SqliteMemoryStore.open(path):
        pass
    with sqlite3.connect(path) as raw:  # the lookup forget makes for the character's replies
        plan = raw.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM messages WHERE is_character = 1 AND platform = ? AND reply_to_id IN (?)",
            ("twitch", "m-1"),
        ).fetchall()
    assert "USING INDEX messages_replies_by_line" in " ".join(row[-1] for row in plan)


async def test_a_redelivered_line_is_never_answered_twice(manager, scripted) -> None:
    event = ChatEvent(
        platform="twitch",
        channel_id="c1",
        author_id="ann",
        author_name="Ann",
        text="pip, hello!",
        message_id="eventsub-9",
        addresses_bot=True,
    )
    first, again = await manager.hear(event), await manager.hear(event)
    assert (first.redelivered, again.redelivered) == (False, True)
    assert await manager.reply(first) is not None
    assert await manager.reply(again) is None
    assert len(scripted.requests) == 1


async def test_the_sqlite_store_is_the_memory_store_the_engine_types_against(tmp_path: Path) -> None:
    # The annotation makes mypy check every method's signature against the protocol.
    store: MemoryStore = await SqliteMemoryStore.open(tmp_path / "m.sqlite3")
    try:
        assert isinstance(store, MemoryStore)
        promised = [name for name in dir(MemoryStore) if not name.startswith("_")]
        differing = {
            name: (inspect.signature(getattr(MemoryStore, name)), inspect.signature(getattr(SqliteMemoryStore, name)))
            for name in promised
            if _parameters(getattr(MemoryStore, name)) != _parameters(getattr(SqliteMemoryStore, name))
        }
        assert differing == {}
    finally:
        await store.close()


def _parameters(method: Any) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(method).parameters.values()]
