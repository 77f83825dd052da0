"""Storage faults: a lock held past the busy timeout, a full disk, a read-only file, file modes.

Nothing a caller was told is stored may be lost, the cause is logged once, and the bot recovers by
itself when the fault clears. The faults are real (tests/fault_storage.py): another process holds
the lock, a tiny tmpfs fills up or is remounted read-only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from engine.events import ChatEvent
from memory import DatabaseUnavailable, MemoryStoreError, SqliteMemoryStore
from memory.errors import MemoryBackedUp
from tests.fault_storage import fill, locked_by_another_program, read_only, tiny_disk

pytestmark = pytest.mark.timeout(120)

BUSY_TIMEOUT_S = 0.2  # the lock below is held several times longer


def line(index: int, author: str = "ann") -> ChatEvent:
    return ChatEvent(
        platform="twitch",
        channel_id="c1",
        author_id=author,
        author_name=author.title(),
        text=f"line {index}",
        message_id=f"m{index}",
    )


def memory_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("memory") and r.levelno == level]


async def test_lines_wait_out_a_lock_held_past_the_busy_timeout_and_none_is_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "m.sqlite3"
    caplog.set_level(logging.INFO)
    async with await SqliteMemoryStore.open(path, busy_timeout_s=BUSY_TIMEOUT_S) as store:
        await store.record_message(line(0))
        with locked_by_another_program(path, seconds=2.0):
            waiting = [asyncio.create_task(store.record_message(line(i))) for i in range(1, 41)]
            await asyncio.sleep(1.0)  # five busy timeouts: the first tries have failed
            assert not any(task.done() for task in waiting), "a line was answered while the lock was held"
        records = await asyncio.wait_for(asyncio.gather(*waiting), 15)
        assert [r.message_count for r in records] == list(range(2, 42))
        assert await store.count_messages() == 41
        assert await store.integrity_check() == "ok"
    errors = memory_records(caplog, logging.ERROR)
    assert len(errors) == 1 and "locked by another program" in errors[0], errors
    assert len(memory_records(caplog, logging.WARNING)) == 1  # and once when it is over


async def test_past_the_waiting_bound_a_line_is_refused_at_once_and_the_waiting_ones_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    async with await SqliteMemoryStore.open(path, busy_timeout_s=BUSY_TIMEOUT_S, max_waiting_lines=5) as store:
        with locked_by_another_program(path, seconds=1.5):
            waiting = [asyncio.create_task(store.record_message(line(i))) for i in range(5)]
            await asyncio.sleep(0.3)
            with pytest.raises(MemoryBackedUp, match="5 chat lines already wait"):
                await asyncio.wait_for(store.record_message(line(99)), 0.5)  # refused, not parked
        await asyncio.wait_for(asyncio.gather(*waiting), 15)
        assert await store.count_messages() == 5
        assert await store.message_id_for("twitch", "m99") is None


async def test_a_full_disk_says_so_keeps_the_waiting_lines_and_recovers_when_space_returns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with tiny_disk(tmp_path / "tiny") as disk:
        async with await SqliteMemoryStore.open(disk / "m.sqlite3") as store:
            await store.record_message(line(0))
            with fill(disk):
                waiting = [asyncio.create_task(store.record_message(line(i, f"viewer{i}"))) for i in range(1, 41)]
                await asyncio.sleep(1.0)
                assert not any(task.done() for task in waiting), "a line was answered while the disk was full"
            await asyncio.wait_for(asyncio.gather(*waiting), 15)
            assert await store.count_messages() == 41
            assert await store.integrity_check() == "ok"
    errors = memory_records(caplog, logging.ERROR)
    # The cause, once, in words: SQLite's own "database or disk is full", not a failed ROLLBACK's.
    assert len(errors) == 1 and "is full" in errors[0] and "database or disk is full" in errors[0], errors
    assert "rollback" not in " ".join(errors).lower()


async def test_a_read_only_database_is_refused_at_open_with_one_clear_line(tmp_path: Path) -> None:
    with tiny_disk(tmp_path / "tiny") as disk:
        path = disk / "m.sqlite3"
        async with await SqliteMemoryStore.open(path) as store:
            await store.record_message(line(0))
        read_only(disk)
        with pytest.raises(DatabaseUnavailable) as refused:
            await SqliteMemoryStore.open(path)
    message = str(refused.value)
    assert "read-only" in message and str(path) in message and "\n" not in message


async def test_database_files_are_created_readable_by_their_owner_only(tmp_path: Path) -> None:
    previous = os.umask(0o022)  # the usual umask would make them 0644
    try:
        path = tmp_path / "m.sqlite3"
        async with await SqliteMemoryStore.open(path) as store:
            await store.record_message(line(0))
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    finally:
        os.umask(previous)
    assert modes == {"m.sqlite3": 0o600, "m.sqlite3-wal": 0o600, "m.sqlite3-shm": 0o600}


async def test_one_line_that_cannot_be_stored_is_refused_alone_and_the_rest_of_its_batch_is_stored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    lines = [line(index) for index in range(31)]
    lines[13] = replace(lines[13], text="a lone surrogate \ud800 from a JSON escape")  # SQLite cannot encode it
    async with await SqliteMemoryStore.open(tmp_path / "m.sqlite3") as store:
        # Submitted together: one group-commit batch.
        results = await asyncio.gather(*(store.record_message(each) for each in lines), return_exceptions=True)
        stored = await store.recent_messages("twitch", "c1", limit=100)
        assert await store.integrity_check() == "ok"
    refused = [index for index, result in enumerate(results) if isinstance(result, BaseException)]
    assert refused == [13]
    assert isinstance(results[13], MemoryStoreError)
    assert [message.text for message in stored] == [f"line {index}" for index in range(31) if index != 13]
    errors = memory_records(caplog, logging.ERROR)
    assert len(errors) == 1 and "one chat line was refused" in errors[0], errors
