"""costar's memory: every chat line, replies, users, notes, persona choices, summaries (SQLite).

Only this package writes SQL. It imports nothing from the engine: what it stores of a chat line
is the :class:`~memory.records.IncomingLine` protocol, which the engine's events satisfy. The
engine in turn sees storage only as the :class:`~memory.protocol.MemoryStore` protocol;
:class:`~memory.store.SqliteMemoryStore` is its one implementation.
"""

from __future__ import annotations

from memory.errors import DatabaseBusy, DatabaseUnavailable, MemoryStoreError
from memory.protocol import MemoryStore
from memory.records import ForgetResult, IncomingLine, Note, RecalledLine, StoredMessage, Summary, UserRecord
from memory.scopes import line_place, place_of
from memory.store import SqliteMemoryStore
from memory.vectors import LineVector, NoteVector, VectorSpace

__all__ = [
    "DatabaseBusy",
    "DatabaseUnavailable",
    "ForgetResult",
    "IncomingLine",
    "LineVector",
    "MemoryStore",
    "MemoryStoreError",
    "Note",
    "NoteVector",
    "RecalledLine",
    "SqliteMemoryStore",
    "StoredMessage",
    "Summary",
    "UserRecord",
    "VectorSpace",
    "line_place",
    "place_of",
]
