"""Rows as the rest of costar sees them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["ForgetResult", "StoredMessage", "Summary", "UserRecord"]


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    platform: str
    channel_id: str
    author_id: str
    author_name: str
    text: str
    is_character: bool
    persona_id: str | None
    created_at: datetime
    platform_message_id: str | None = None
    reply_to_id: str | None = None
    from_moderator: bool = False  # broadcaster, moderator or admin when they wrote it


@dataclass(frozen=True, slots=True)
class UserRecord:
    platform: str
    user_id: str
    display_name: str
    first_seen: datetime
    last_seen: datetime
    message_count: int

    @property
    def is_new(self) -> bool:
        return self.message_count <= 1


@dataclass(frozen=True, slots=True)
class Summary:
    platform: str
    channel_id: str
    text: str
    upto_message_id: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ForgetResult:
    messages: int
    notes: int
    users: int

    @property
    def total(self) -> int:
        return self.messages + self.notes + self.users
