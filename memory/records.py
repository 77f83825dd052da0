"""Rows as the rest of costar sees them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

__all__ = [
    "NO_VIEWER",
    "ForgetResult",
    "IncomingLine",
    "Note",
    "RecalledLine",
    "StoredMessage",
    "Summary",
    "UserRecord",
]

# The author id of a line no viewer owns (an anonymous gift or cheer): stored without a user row,
# so the anonymous gifters of a stream do not all become one viewer.
NO_VIEWER = ""


class IncomingLine(Protocol):
    """What memory stores of a viewer's chat line.

    A protocol rather than a class of its own: the engine's ``ChatEvent`` has these attributes,
    so a flood of lines is stored without a conversion per line, and memory imports nothing
    from the engine.
    """

    @property
    def platform(self) -> str: ...
    @property
    def channel_id(self) -> str: ...
    @property
    def server_id(self) -> str | None: ...
    @property
    def author_id(self) -> str: ...
    @property
    def author_name(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def message_id(self) -> str: ...
    @property
    def sent_at(self) -> datetime: ...
    @property
    def reply_to_id(self) -> str | None: ...
    @property
    def addresses_bot(self) -> bool: ...
    @property
    def is_moderator(self) -> bool: ...
    @property
    def private(self) -> bool: ...  # a DM or a channel marked private (memory.scopes)


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
    # The line was stored before: the platform delivered it again (EventSub is at-least-once).
    redelivered: bool = False

    @property
    def is_new(self) -> bool:
        """A first-time chatter: the line just stored is the first costar has seen from them.

        The one definition: the Twitch greeting, the scheduler's priority and the turn context
        all ask this.
        """
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
    redacted: int = 0  # rows of others that named the viewer, now saying "someone" instead

    @property
    def total(self) -> int:
        return self.messages + self.notes + self.users


@dataclass(frozen=True, slots=True)
class Note:
    """Something the character remembers about a viewer.

    ``kind`` says where it came from: ``disclosure`` (the viewer said it about themselves),
    ``reflection`` (the model distilled it) or ``manual``; ``source_message_id`` is the line;
    ``place`` where it was said (:mod:`memory.scopes`). ``topic`` names what a note answers when
    only one answer can be current ("home", "job", "favourite game"); a newer note on the same
    topic supersedes it. None when notes may stand side by side ("I love cats", "I love dogs").
    """

    id: int
    text: str
    created_at: datetime
    kind: str = "manual"
    source_message_id: int | None = None
    place: str = "private"  # where it was said (memory.scopes)
    topic: str | None = None


@dataclass(frozen=True, slots=True)
class RecalledLine:
    """A viewer's past line found by full-text search; ``own`` when the asker said it."""

    id: int
    platform: str
    channel_id: str
    author_name: str
    text: str
    created_at: datetime
    own: bool
    from_moderator: bool = False
    is_character: bool = False  # only viewers' lines are indexed for recall
