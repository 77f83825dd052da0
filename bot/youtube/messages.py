"""YouTube's ``liveChatMessage`` resources as costar's neutral events.

Shapes as the YouTube Data API v3 returns them (``snippet.type`` says which details are set):
``textMessageEvent`` is a chat line; ``superChatEvent`` and ``superStickerEvent`` are paid messages;
``newSponsorEvent`` a new member; ``memberMilestoneChatEvent`` a member's milestone;
``membershipGiftingEvent`` gifted memberships and ``giftMembershipReceivedEvent`` each one received;
``chatEndedEvent`` the end of the chat. Deletions, bans, polls and mode changes are not kept.
Roles come from ``authorDetails``: the chat's owner is the broadcaster, its moderators moderate,
its members (sponsors) count as subscribers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.events import ChatEvent, EventKind, Role, StreamEvent, utcnow

__all__ = ["PLATFORM", "ChatEnded", "Converted", "GifterNames", "convert", "message_text", "roles_from"]

PLATFORM = "youtube"


@dataclass(frozen=True, slots=True)
class ChatEnded:
    """``chatEndedEvent``: nothing more will be said in this chat."""


Converted = ChatEvent | StreamEvent | ChatEnded | None


class GifterNames:
    """Who gifted memberships, by channel id: a received gift names only the gifter's channel id."""

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._names: dict[str, str] = {}

    def note(self, channel_id: str, name: str) -> None:
        self._names.pop(channel_id, None)
        self._names[channel_id] = name
        while len(self._names) > self.capacity:
            del self._names[next(iter(self._names))]

    def name_of(self, channel_id: str) -> str:
        return self._names.get(channel_id, "a member")


def roles_from(author: dict[str, Any]) -> frozenset[Role]:
    roles = set()
    if author.get("isChatOwner"):
        roles.add(Role.BROADCASTER)
    elif author.get("isChatModerator"):
        roles.add(Role.MODERATOR)
    if author.get("isChatSponsor"):
        roles.add(Role.SUBSCRIBER)
    return frozenset(roles)


def _sent_at(snippet: dict[str, Any]) -> datetime:
    published = snippet.get("publishedAt")
    try:
        return datetime.fromisoformat(published) if published else utcnow()
    except ValueError:
        return utcnow()


def message_text(item: dict[str, Any]) -> str:
    """What a text message says (``textMessageDetails.messageText``, else ``displayMessage``)."""
    snippet = item.get("snippet") or {}
    return str((snippet.get("textMessageDetails") or {}).get("messageText") or snippet.get("displayMessage") or "")


def convert(item: dict[str, Any], addressed: Callable[[str], bool], gifters: GifterNames) -> Converted:
    """One ``liveChatMessage``: a chat line, a stream event, the chat's end, or None (not kept)."""
    snippet = item.get("snippet") or {}
    author = item.get("authorDetails") or {}
    kind = snippet.get("type")
    chat_id = str(snippet.get("liveChatId") or "")
    author_id = str(author.get("channelId") or snippet.get("authorChannelId") or "")
    author_name = str(author.get("displayName") or author_id)
    if kind == "chatEndedEvent":
        return ChatEnded()
    if kind == "textMessageEvent":
        text = message_text(item)
        return ChatEvent(
            platform=PLATFORM,
            channel_id=chat_id,
            author_id=author_id,
            author_name=author_name,
            text=str(text),
            message_id=str(item["id"]),
            roles=roles_from(author),
            sent_at=_sent_at(snippet),
            addresses_bot=addressed(str(text)),
        )
    event = _stream_event(kind, snippet, author_name, gifters)
    if event is None:
        return None
    return StreamEvent(
        platform=PLATFORM,
        channel_id=chat_id,
        event_id=str(item["id"]),
        user_id=event.get("user_id", author_id),
        user_name=event.get("user_name", author_name),
        sent_at=_sent_at(snippet),
        **{key: value for key, value in event.items() if key not in ("user_id", "user_name")},
    )


def _stream_event(
    kind: str | None, snippet: dict[str, Any], author_name: str, gifters: GifterNames
) -> dict[str, Any] | None:
    """The kind's StreamEvent fields; None for a kind costar keeps no event of."""
    if kind == "superChatEvent":
        details = snippet.get("superChatDetails") or {}
        return {
            "kind": EventKind.PAID_MESSAGE,
            "detail": details.get("amountDisplayString", ""),
            "text": details.get("userComment", ""),
        }
    if kind == "superStickerEvent":
        details = snippet.get("superStickerDetails") or {}
        sticker = (details.get("superStickerMetadata") or {}).get("altText", "")
        return {"kind": EventKind.PAID_MESSAGE, "detail": details.get("amountDisplayString", ""), "text": sticker}
    if kind == "newSponsorEvent":
        details = snippet.get("newSponsorDetails") or {}
        return {"kind": EventKind.SUB, "detail": details.get("memberLevelName")}
    if kind == "memberMilestoneChatEvent":
        details = snippet.get("memberMilestoneChatDetails") or {}
        return {
            "kind": EventKind.RESUB,
            "amount": int(details.get("memberMonth") or 0),
            "text": details.get("userComment", ""),
        }
    if kind == "membershipGiftingEvent":
        details = snippet.get("membershipGiftingDetails") or {}
        gifters.note(str(snippet.get("authorChannelId") or ""), author_name)
        return {"kind": EventKind.GIFT_BOMB, "amount": int(details.get("giftMembershipsCount") or 0)}
    if kind == "giftMembershipReceivedEvent":
        details = snippet.get("giftMembershipReceivedDetails") or {}
        gifter = str(details.get("gifterChannelId") or "")
        return {
            "kind": EventKind.GIFT,
            "user_id": gifter,
            "user_name": gifters.name_of(gifter),
            "recipient": author_name,
            "group_id": details.get("associatedMembershipGiftingMessageId"),
        }
    return None
