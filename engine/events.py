"""Platform-neutral chat events and replies: the only shapes adapters and the engine exchange."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

__all__ = ["ChatEvent", "ChatMessage", "MessageRole", "Reply", "Role", "Usage", "utcnow"]

MessageRole = Literal["system", "user", "assistant"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Role(enum.StrEnum):
    """What a chatter is in the channel; moderation rights derive from these."""

    BROADCASTER = "broadcaster"
    MODERATOR = "moderator"
    SUBSCRIBER = "subscriber"
    VIP = "vip"
    ADMIN = "admin"  # Discord "Manage Server" or a configured role
    HOST = "host"  # the streamer's own voice, heard through the microphone (engine.hearing)


MODERATING_ROLES = frozenset({Role.BROADCASTER, Role.MODERATOR, Role.ADMIN, Role.HOST})


@dataclass(frozen=True, slots=True)
class ChatEvent:
    """One chat line as the engine sees it, whatever platform it came from.

    ``channel_id`` is unique within ``platform``; ``server_id`` is the Discord guild (persona
    choices fall back to it) and ``None`` elsewhere. ``addresses_bot`` is decided by the adapter
    (a mention, a reply to the bot, the character's name, a DM). ``private`` marks a conversation
    that must never be shown on the stream (a DM, a channel the streamer marked private): neither
    the line nor the reply reaches the overlay, the voice or OBS.
    """

    platform: str
    channel_id: str
    author_id: str
    author_name: str
    text: str
    message_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    roles: frozenset[Role] = frozenset()
    sent_at: datetime = field(default_factory=utcnow)
    reply_to_id: str | None = None
    addresses_bot: bool = False
    server_id: str | None = None
    is_first_message: bool = False
    private: bool = False

    @property
    def channel_key(self) -> str:
        return f"{self.platform}:{self.channel_id}"

    @property
    def is_moderator(self) -> bool:
        return bool(self.roles & MODERATING_ROLES)


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a prompt as a backend gets it: who says it, and what."""

    role: MessageRole
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # Leading prompt tokens served from a kept KV state instead of being evaluated again.
    cached_prompt_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """What the character said in answer to ``event``, already post-processed."""

    event: ChatEvent
    text: str
    persona_id: str
    persona_name: str
    usage: Usage | None = None
    prompt_tokens: int = 0
    history_trimmed: bool = False
    finish_reason: str | None = None
    memory_id: int | None = None  # row id in memory, for linking the platform's message id later
