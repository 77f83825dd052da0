"""Memory's exception tree; the engine translates these at its boundary.

MemoryStoreError
├── DatabaseUnavailable  the file cannot be opened, created, written or migrated (names the path)
├── DatabaseBusy         another process holds the database's write lock past the busy timeout
│   └── MemoryBackedUp   too many chat lines already wait for the database: this one was refused
└── DiskFull             the disk holding the database is full
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["DatabaseBusy", "DatabaseUnavailable", "DiskFull", "MemoryBackedUp", "MemoryStoreError", "translate"]


class MemoryStoreError(Exception):
    """Base of every error memory raises on purpose (not Python's ``MemoryError``)."""


class DatabaseUnavailable(MemoryStoreError):
    pass


class DatabaseBusy(MemoryStoreError):
    pass


class MemoryBackedUp(DatabaseBusy):
    pass


class DiskFull(MemoryStoreError):
    pass


def translate(doing: str, exc: sqlite3.Error, path: Path) -> MemoryStoreError:
    """The memory error for an SQLite error met while ``doing`` something with the file at ``path``."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # the primary code of an extended one
    if code == sqlite3.SQLITE_FULL or "database or disk is full" in str(exc):
        return DiskFull(f"{doing}: the disk holding {path} is full ({exc}); free some space")
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(exc) or "busy" in str(exc):
        return DatabaseBusy(f"{doing}: {path} is locked by another program ({exc})")
    return MemoryStoreError(f"{doing} in {path}: {exc}")
