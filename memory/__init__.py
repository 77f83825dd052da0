"""costar's memory: every chat line, replies, users, notes, persona choices, summaries (SQLite)."""

from __future__ import annotations

from memory.records import ForgetResult, StoredMessage, Summary, UserRecord
from memory.store import MemoryError, MemoryStore

__all__ = ["ForgetResult", "MemoryError", "MemoryStore", "StoredMessage", "Summary", "UserRecord"]
