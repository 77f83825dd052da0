"""What the engine may ask of memory: the :class:`MemoryStore` protocol.

The engine types against this protocol and never names the storage behind it; the SQLite store
(:class:`memory.store.SqliteMemoryStore`) is its one implementation, opened by the bot at start-up.
A method returns an awaitable rather than being declared ``async`` because the SQLite store wraps
each one to translate its errors (:class:`memory.errors.MemoryStoreError`); callers just await it.

Storage errors leave every method as :class:`~memory.errors.MemoryStoreError` (or a subclass).
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from memory.records import ForgetResult, IncomingLine, Note, RecalledLine, StoredMessage, Summary, UserRecord
from memory.scopes import UNKNOWN_PLACE
from memory.vectors import LineVector, NoteVector, Vector, VectorSpace

__all__ = ["MemoryStore"]


@runtime_checkable
class MemoryStore(Protocol):
    """Chat lines, replies, viewers, notes, vectors, persona choices and summaries, kept durably."""

    def close(self) -> Awaitable[None]: ...

    # -- lines and replies ----------------------------------------------------------------------

    def record_message(self, event: IncomingLine) -> Awaitable[UserRecord]:
        """Store a viewer's line and count it for its author; done once it is durable."""
        ...

    def lines_waiting(self) -> int:
        """Viewers' lines given to :meth:`record_message` and not yet durable (a flood still coming in)."""
        ...

    def record_reply(
        self,
        answered: IncomingLine,
        *,
        persona_id: str,
        persona_name: str,
        text: str,
        platform_message_id: str | None = None,
    ) -> Awaitable[int]:
        """Store what the character said in answer to ``answered``; the row id."""
        ...

    def set_platform_message_id(self, row_id: int, platform_message_id: str) -> Awaitable[None]: ...

    def set_review(self, row_id: int, review: str, *, text: str, draft: str | None) -> Awaitable[None]: ...

    def cut_reply(self, row_id: int, text: str) -> Awaitable[None]: ...

    def recent_messages(
        self, platform: str, channel_id: str, *, limit: int, after_id: int = 0, upto_id: int | None = None
    ) -> Awaitable[list[StoredMessage]]:
        """The channel's last ``limit`` lines with ``after_id < id <= upto_id``, oldest first."""
        ...

    def message_id_for(self, platform: str, platform_message_id: str) -> Awaitable[int | None]: ...

    def message_by_platform_id(self, platform: str, platform_message_id: str) -> Awaitable[StoredMessage | None]: ...

    def count_messages(self, platform: str | None = None, channel_id: str | None = None) -> Awaitable[int]: ...

    # -- mutes ----------------------------------------------------------------------------------

    def set_muted(self, scope: str, muted: bool) -> Awaitable[None]: ...

    def muted_scopes(self) -> Awaitable[list[str]]: ...

    # -- viewers and notes ----------------------------------------------------------------------

    def get_user(self, platform: str, user_id: str) -> Awaitable[UserRecord | None]: ...

    def search_users(self, text: str, *, limit: int = 20) -> Awaitable[list[UserRecord]]: ...

    def viewer_lines(self, platform: str, user_id: str, *, limit: int) -> Awaitable[list[StoredMessage]]: ...

    def lines_by_user(
        self, platform: str, user_id: str, *, limit: int, place: str | None = None
    ) -> Awaitable[list[str]]: ...

    def add_note(
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
    ) -> Awaitable[bool]:
        """Remember ``text`` about a viewer; False when the same note is already there."""
        ...

    def notes_for(
        self,
        platform: str,
        user_id: str,
        persona_id: str | None = None,
        *,
        seen_in: str | None = None,
        within: str | None = None,
    ) -> Awaitable[list[Note]]: ...

    def delete_note(self, platform: str, note_id: int, *, within: str | None = None) -> Awaitable[bool]: ...

    def forget_user(self, platform: str, user_id: str) -> Awaitable[ForgetResult]:
        """Delete a viewer's lines, the replies to them, their notes and their record."""
        ...

    def names_of(self, platform: str, user_id: str) -> Awaitable[list[str]]: ...

    # -- recall ---------------------------------------------------------------------------------

    def recall(
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
    ) -> Awaitable[list[RecalledLine]]: ...

    def use_vector_space(self, space: VectorSpace) -> Awaitable[None]: ...

    def add_vectors(self, rows: Sequence[LineVector]) -> Awaitable[int]: ...

    def add_note_vectors(self, rows: Sequence[NoteVector]) -> Awaitable[int]: ...

    def held_vectors_fill(self) -> tuple[int, int]: ...

    def nearest_lines(
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
    ) -> Awaitable[list[tuple[RecalledLine, float]]]: ...

    def nearest_notes(
        self,
        platform: str,
        user_id: str,
        query_vector: Vector,
        *,
        persona_id: str | None = None,
        seen_in: str | None = None,
        limit: int,
    ) -> Awaitable[list[tuple[Note, float]]]: ...

    # -- personas and summaries -----------------------------------------------------------------

    def set_persona(
        self, platform: str, scope: str, scope_id: str, persona_id: str, set_by: str | None
    ) -> Awaitable[None]: ...

    def persona_choice(self, platform: str, channel_id: str, server_id: str | None = None) -> Awaitable[str | None]: ...

    def save_summary(
        self, platform: str, channel_id: str, text: str, upto_message_id: int, persona_id: str | None
    ) -> Awaitable[None]: ...

    def latest_summary(self, platform: str, channel_id: str) -> Awaitable[Summary | None]: ...
