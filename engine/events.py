"""Platform-neutral chat events and replies: the only shapes adapters and the engine exchange."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from personas.moderation_rules import Action, Reason

__all__ = [
    "ChatEvent",
    "ChatMessage",
    "EventKind",
    "Finding",
    "MessageRole",
    "Reply",
    "Role",
    "StreamEvent",
    "Usage",
    "Verdict",
    "utcnow",
]

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


# -- stream events ---------------------------------------------------------------------------
# The neutral stream event: what a follow, sub, gift bomb, raid, cheer or redemption is, whatever
# platform announced it.
#
# An event is stored in memory as a line spoken by the viewer it is about ("raided the channel with
# 120 viewers"), so recall and the prompt's history see it exactly as they see chat, and the
# character can later say "you raided with 120 people last week".


class EventKind(enum.StrEnum):
    FOLLOW = "follow"
    SUB = "sub"
    RESUB = "resub"
    GIFT = "gift"  # one gifted sub; part of a gift bomb when ``group_id`` is set
    GIFT_BOMB = "gift_bomb"  # a community gift of ``amount`` subs
    RAID = "raid"
    CHEER = "cheer"
    REDEMPTION = "redemption"  # a channel-point reward: ``reward`` and the viewer's ``text``
    ONLINE = "online"
    OFFLINE = "offline"
    JOIN = "join"  # a new member of a Discord server
    # Twitch's other chat notices, named as Twitch names them; stored, said only if the card asks.
    PAY_IT_FORWARD = "pay_it_forward"  # gifted a sub on after receiving one from ``detail``
    GIFT_PAID_UPGRADE = "gift_paid_upgrade"  # kept the sub ``detail`` gifted them going, at their own cost
    PRIME_PAID_UPGRADE = "prime_paid_upgrade"  # moved from Prime to a paid ``tier``
    ANNOUNCEMENT = "announcement"  # a moderator's /announce: ``text``
    BITS_BADGE_TIER = "bits_badge_tier"  # reached the bits badge of ``amount`` bits
    CHARITY_DONATION = "charity_donation"  # ``detail``: "5.00 USD to <the charity>"
    WATCH_STREAK = "watch_streak"  # watched ``amount`` streams in a row
    SHARED_CHAT_SUB = "shared_chat_sub"  # subscribed in another channel of a shared chat (``detail``)
    SHARED_CHAT_RAID = "shared_chat_raid"  # raided another channel of a shared chat (``detail``)
    PAID_MESSAGE = "paid_message"  # a paid, highlighted chat message or sticker: ``detail`` "$5.00", ``text``


_TIERS = {"1000": "tier 1", "2000": "tier 2", "3000": "tier 3", "prime": "Prime"}


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One stream event. ``event_id`` is the platform's own id where it has one: EventSub delivers
    at least once, and the manager drops a second delivery of the same id.

    ``user_*`` is who did it (the raider, the gifter, the follower; the broadcaster for
    online/offline); ``user_id`` is :data:`~memory.records.NO_VIEWER` for an anonymous gift or
    cheer, which is stored under no viewer. ``amount`` is viewers, bits, gifted subs or months by kind; ``text`` is the
    viewer's own words (resub message, cheer message, redemption input); ``recipient`` the one
    who got a gifted sub.
    """

    platform: str
    channel_id: str
    kind: EventKind
    event_id: str
    user_id: str
    user_name: str
    amount: int = 0
    text: str = ""
    reward: str | None = None
    tier: str | None = None
    group_id: str | None = None  # the community gift a single gifted sub belongs to
    recipient: str | None = None
    detail: str | None = None  # a kind's own words: the charity and amount, a shared chat's channel
    server_id: str | None = None
    sent_at: datetime = field(default_factory=utcnow)

    @property
    def channel_key(self) -> str:
        return f"{self.platform}:{self.channel_id}"

    @property
    def message_id(self) -> str:
        """The id its stored line carries; never the same as a chat message's."""
        return f"event:{self.kind.value}:{self.event_id}"

    def describe(self) -> str:
        """What happened, in the words the character's memory keeps (without the viewer's name)."""
        tier = _TIERS.get(self.tier or "", "")
        kind = self.kind
        said = f': "{self.text}"' if self.text else ""
        if kind is EventKind.FOLLOW:
            return "followed the channel"
        if kind is EventKind.SUB:
            return f"subscribed ({tier})" if tier else "subscribed"
        if kind is EventKind.RESUB:
            return f"resubscribed for {self.amount} months{said}"
        if kind is EventKind.GIFT:
            return f"gifted a sub to {self.recipient}" if self.recipient else "gifted a sub"
        if kind is EventKind.GIFT_BOMB:
            return f"gifted {self.amount} subs to the community"
        if kind is EventKind.RAID:
            return f"raided the channel with {self.amount} viewers"
        if kind is EventKind.CHEER:
            return f"cheered {self.amount} bits{said}"
        if kind is EventKind.REDEMPTION:
            return f'redeemed "{self.reward}"{said}'
        if kind is EventKind.ONLINE:
            return "started the stream"
        if kind is EventKind.OFFLINE:
            return "ended the stream"
        if kind is EventKind.JOIN:
            return "joined the server"
        return self._describe_notice(tier, said)

    def _describe_notice(self, tier: str, said: str) -> str:
        kind = self.kind
        if kind is EventKind.PAY_IT_FORWARD:
            return f"paid forward the gift sub from {self.detail}" if self.detail else "paid a gift sub forward"
        if kind is EventKind.GIFT_PAID_UPGRADE:
            return f"kept the gift sub from {self.detail} going" if self.detail else "kept their gifted sub going"
        if kind is EventKind.PRIME_PAID_UPGRADE:
            return f"upgraded from Prime to a paid sub ({tier})" if tier else "upgraded from Prime to a paid sub"
        if kind is EventKind.ANNOUNCEMENT:
            return f"announced{said}"
        if kind is EventKind.BITS_BADGE_TIER:
            return f"unlocked the {self.amount} bits badge"
        if kind is EventKind.CHARITY_DONATION:
            return f"donated {self.detail}"
        if kind is EventKind.WATCH_STREAK:
            return f"watched {self.amount} streams in a row{said}"
        if kind is EventKind.PAID_MESSAGE:
            return f"sent a paid message of {self.detail}{said}"
        if kind is EventKind.SHARED_CHAT_SUB:
            return f"subscribed in {self.detail} (shared chat)"
        return f"raided {self.detail} with {self.amount} viewers (shared chat)"

    def as_line(self) -> ChatEvent:
        """The event as the chat line memory stores: spoken by its viewer, addressed to nobody."""
        return ChatEvent(
            platform=self.platform,
            channel_id=self.channel_id,
            author_id=self.user_id,
            author_name=self.user_name,
            text=f"*{self.describe()}*",
            message_id=self.message_id,
            sent_at=self.sent_at,
            server_id=self.server_id,
        )


# -- moderation verdicts -----------------------------------------------------------------------
# What moderation decided of a line or a reply; it travels on engine.heard.HeardLine and to the
# control room, so it is defined here, below the rooms that pass it on.


@dataclass(frozen=True, slots=True)
class Finding:
    reason: Reason
    action: Action
    detail: str = ""  # safe to log: a domain, a rule name; never hidden text or a slur


@dataclass(frozen=True, slots=True)
class Verdict:
    """The strictest action of the findings, and the text to use (fixed, replaced or empty)."""

    action: Action
    text: str
    findings: tuple[Finding, ...] = ()

    @property
    def passes(self) -> bool:
        """The text may be used as it is in ``text`` (possibly fixed)."""
        return self.action in (Action.ALLOW, Action.FIX)

    @property
    def reasons(self) -> list[str]:
        return [finding.reason.value for finding in self.findings]
