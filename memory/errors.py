"""Memory's exception tree; the engine translates these at its boundary.

MemoryStoreError
├── DatabaseUnavailable  the file cannot be opened, created or migrated (names the path)
└── DatabaseBusy         another process holds the database's write lock past the busy timeout
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["DatabaseBusy", "DatabaseUnavailable", "MemoryStoreError", "translate"]


class MemoryStoreError(Exception):
    """Base of every error memory raises on purpose (not Python's ``MemoryError``)."""


class DatabaseUnavailable(MemoryStoreError):
    pass


class DatabaseBusy(MemoryStoreError):
    pass


def translate(doing: str, exc: sqlite3.Error, path: Path) -> MemoryStoreError:
    """The memory error for an SQLite error met while ``doing`` something with the file at ``path``."""
    if "locked" in str(exc) or "busy" in str(exc):
        return DatabaseBusy(f"{doing}: {path} is locked by another program ({exc})")
    return MemoryStoreError(f"{doing} in {path}: {exc}")
