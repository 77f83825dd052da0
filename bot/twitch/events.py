"""Twitch stream events through EventSub: which subscriptions the tokens allow, and twitchio's
payloads as neutral :class:`engine.events.StreamEvent` values.

=====================================================  ===========================  ===============
subscription                                           scope (any of)               whose token
=====================================================  ===========================  ===============
``channel.chat.notification`` (subs, resubs, gifts,    ``user:read:chat``           the bot's
community gifts, raids and Twitch's other notices)
``channel.follow`` v2                                  ``moderator:read:followers`` broadcaster's
``channel.cheer``                                      ``bits:read``                broadcaster's
``channel.channel_points_custom_reward_redemption``    ``channel:read:redemptions``,broadcaster's
``.add``                                               ``channel:manage:redemptions``
``stream.online`` / ``stream.offline``                 none                         the bot's
=====================================================  ===========================  ===============

The broadcaster's token comes from ``costar twitch auth --broadcaster``. Subscriptions its scopes
do not allow are skipped, and the start-up log names the scope each one is missing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twitchio.eventsub import (
    ChannelCheerSubscription,
    ChannelFollowSubscription,
    ChannelPointsRedeemAddSubscription,
    ChatNotificationSubscription,
    StreamOfflineSubscription,
    StreamOnlineSubscription,
    SubscriptionPayload,
)

from bot.twitch.auth import BROADCASTER_SCOPES
from bot.twitch.eventsub import Delivery
from engine.events import EventKind, StreamEvent
from memory.records import NO_VIEWER

__all__ = [
    "ANONYMOUS_CHEERER",
    "ANONYMOUS_GIFTER",
    "BROADCASTER_SCOPES",
    "EVENT_SUBSCRIPTIONS",
    "Converted",
    "EventSubscription",
    "Ignored",
    "TokenScopes",
    "from_cheer",
    "from_follow",
    "from_notification",
    "from_redemption",
    "from_stream_offline",
    "from_stream_online",
    "plan_subscriptions",
    "subscription_for",
]

PLATFORM = "twitch"


@dataclass(frozen=True, slots=True)
class TokenScopes:
    user_id: str
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class EventSubscription:
    label: str  # what the log calls it
    scopes: tuple[str, ...]  # any one of them; empty: none needed
    broadcaster_token: bool  # needs the broadcaster's own token (or a moderator's, for follows)
    build: Callable[[str, str], SubscriptionPayload]  # (broadcaster id, token user id) -> subscription


EVENT_SUBSCRIPTIONS: tuple[EventSubscription, ...] = (
    EventSubscription(
        "subs, gifts and raids",
        ("user:read:chat",),
        False,
        lambda channel, user: ChatNotificationSubscription(broadcaster_user_id=channel, user_id=user),
    ),
    EventSubscription(
        "follows",
        ("moderator:read:followers",),
        True,
        lambda channel, user: ChannelFollowSubscription(broadcaster_user_id=channel, moderator_user_id=user),
    ),
    EventSubscription(
        "cheers", ("bits:read",), True, lambda channel, user: ChannelCheerSubscription(broadcaster_user_id=channel)
    ),
    EventSubscription(
        "channel-point redemptions",
        ("channel:read:redemptions", "channel:manage:redemptions"),
        True,
        lambda channel, user: ChannelPointsRedeemAddSubscription(broadcaster_user_id=channel),
    ),
    EventSubscription(
        "stream online", (), False, lambda channel, user: StreamOnlineSubscription(broadcaster_user_id=channel)
    ),
    EventSubscription(
        "stream offline", (), False, lambda channel, user: StreamOfflineSubscription(broadcaster_user_id=channel)
    ),
)


def subscription_for(twitch_type: str) -> EventSubscription | None:
    """The stream-event subscription of an EventSub type (``stream.offline``); None for chat itself."""
    return next((s for s in EVENT_SUBSCRIPTIONS if s.build("0", "0").type == twitch_type), None)


def plan_subscriptions(
    channel_id: str, bot: TokenScopes, broadcaster: TokenScopes | None
) -> tuple[list[tuple[EventSubscription, str]], list[tuple[EventSubscription, str]]]:
    """(subscriptions to make with the user id whose token makes each, those skipped with why)."""
    owner = broadcaster if broadcaster is not None and broadcaster.user_id == channel_id else None
    planned: list[tuple[EventSubscription, str]] = []
    skipped: list[tuple[EventSubscription, str]] = []
    for subscription in EVENT_SUBSCRIPTIONS:
        token = _token_for(subscription, bot, owner)
        if token is not None:
            planned.append((subscription, token.user_id))
        else:
            skipped.append((subscription, _missing(subscription, owner)))
    return planned, skipped


def _token_for(subscription: EventSubscription, bot: TokenScopes, owner: TokenScopes | None) -> TokenScopes | None:
    def allows(token: TokenScopes) -> bool:
        return not subscription.scopes or bool(token.scopes & set(subscription.scopes))

    if not subscription.broadcaster_token:
        return bot if allows(bot) else None
    if owner is not None and allows(owner):
        return owner
    return None


def _missing(subscription: EventSubscription, owner: TokenScopes | None) -> str:
    scope = " or ".join(subscription.scopes)
    if not subscription.broadcaster_token:
        return f"the bot's token lacks scope {scope}: run `costar twitch auth` again"
    if owner is None:
        return f"needs scope {scope} from the broadcaster: run `costar twitch auth --broadcaster`"
    return f"the broadcaster's token lacks scope {scope}: run `costar twitch auth --broadcaster` again"


# -- payloads -----------------------------------------------------------------------------------
#
# Every converter takes a :class:`bot.twitch.eventsub.Delivery` (twitchio's object in ``parsed``,
# the raw event beside it) and returns a StreamEvent, or :class:`Ignored` saying why there is none.
# An event with no id of its own is known by the envelope's message id, which a redelivery repeats.

ANONYMOUS_GIFTER = "an anonymous gifter"
ANONYMOUS_CHEERER = "an anonymous cheerer"
# The account some senders name as the gifter of an anonymous gift (the IRC-era convention).
_PLACEHOLDER_GIFTER = "ananonymousgifter"


@dataclass(frozen=True, slots=True)
class Ignored:
    """A notification that becomes no stream event, and why (the adapter logs it)."""

    kind: str
    why: str
    malformed: bool = False  # a known kind with its details missing: worth a warning each time


Converted = StreamEvent | Ignored


def _name(user: Any) -> str:
    return str(user.display_name or user.name or user.id)


def _who(user: Any, *, anonymous: bool, anonymous_name: str) -> tuple[str, str]:
    """(user id, name) of who did it; an anonymous one is no viewer (twitchio makes a null id "None")."""
    login = str(user.name or "").casefold() if user is not None else ""
    user_id = str(user.id) if user is not None and user.id is not None else ""
    if anonymous or user_id in ("", "None") or login == _PLACEHOLDER_GIFTER:
        return NO_VIEWER, anonymous_name
    return user_id, _name(user)


def _event(broadcaster: Any, kind: EventKind, event_id: str, who: tuple[str, str], **fields: Any) -> StreamEvent:
    user_id, user_name = who
    return StreamEvent(PLATFORM, str(broadcaster.id), kind, event_id, user_id, user_name, **fields)


def delivered_from(delivery: Delivery) -> str:
    """The envelope's message id: the de-duplication key of an event without an id of its own."""
    return delivery.message_id or uuid.uuid4().hex  # an envelope always has one; never merge two events


def from_notification(delivery: Delivery) -> Converted:
    """A ``channel.chat.notification``: subs, gifts, raids and the rest of Twitch's chat notices."""
    payload = delivery.parsed
    notice = str(payload.notice_type)
    reader = _NOTICE_READERS.get(notice)
    if reader is None:
        return Ignored(f"notice {notice}", "costar keeps no event of this kind")
    attribute, read = reader
    details = getattr(payload, attribute, None)
    if details is None:
        who = _chatter(payload)[1]
        return Ignored(f"notice {notice}", f"its {notice} object is null (from {who}): nothing to thank", True)
    return read(payload, details, payload.id or delivered_from(delivery), delivery.event)


def _chatter(payload: Any, anonymous_name: str = "an anonymous viewer") -> tuple[str, str]:
    return _who(payload.chatter, anonymous=bool(payload.anonymous), anonymous_name=anonymous_name)


def _sub(payload: Any, sub: Any, event_id: str, raw: Mapping[str, Any]) -> StreamEvent:
    tier = "prime" if sub.prime else sub.tier
    return _event(payload.broadcaster, EventKind.SUB, event_id, _chatter(payload), tier=tier)


def _resub(payload: Any, resub: Any, event_id: str, raw: Mapping[str, Any]) -> StreamEvent:
    tier = "prime" if resub.prime else resub.tier
    months = resub.cumulative_months
    return _event(
        payload.broadcaster, EventKind.RESUB, event_id, _chatter(payload), amount=months, text=payload.text, tier=tier
    )


def _gift(payload: Any, gift: Any, event_id: str, raw: Mapping[str, Any]) -> StreamEvent:
    return _event(
        payload.broadcaster,
        EventKind.GIFT,
        event_id,
        _chatter(payload, ANONYMOUS_GIFTER),
        amount=1,
        tier=gift.tier,
        group_id=gift.community_gift_id,
        recipient=_name(gift.recipient),
    )


def _gift_bomb(payload: Any, bomb: Any, event_id: str, raw: Mapping[str, Any]) -> StreamEvent:
    who = _chatter(payload, ANONYMOUS_GIFTER)
    return _event(payload.broadcaster, EventKind.GIFT_BOMB, bomb.id or event_id, who, amount=bomb.total, tier=bomb.tier)


def _raid(payload: Any, raid: Any, event_id: str, raw: Mapping[str, Any]) -> StreamEvent:
    who = _who(raid.user, anonymous=False, anonymous_name="a fellow streamer")
    return _event(payload.broadcaster, EventKind.RAID, event_id, who, amount=raid.viewer_count)


def _gifter_of(upgrade: Any) -> str:
    return _who(upgrade.gifter, anonymous=bool(upgrade.anonymous), anonymous_name=ANONYMOUS_GIFTER)[1]


def _pay_it_forward(payload: Any, forward: Any, event_id: str, raw: Mapping[str, Any]) -> StreamEvent:
    detail = _gifter_of(forward)
    return _event(payload.broadcaster, EventKind.PAY_IT_FORWARD, event_id, _chatter(payload), detail=detail)


def _gift_paid_upgrade(payload: Any, upgrade: Any, event_id: str, raw: Mapping[str, Any]) -> StreamEvent:
    detail = _gifter_of(upgrade)
    return _event(payload.broadcaster, EventKind.GIFT_PAID_UPGRADE, event_id, _chatter(payload), detail=detail)


def _prime_paid_upgrade(payload: Any, upgrade: Any, event_id: str, raw: Mapping[str, Any]) -> StreamEvent:
    return _event(payload.broadcaster, EventKind.PRIME_PAID_UPGRADE, event_id, _chatter(payload), tier=upgrade.tier)


def _announcement(payload: Any, announcement: Any, event_id: str, raw: Mapping[str, Any]) -> StreamEvent:
    return _event(payload.broadcaster, EventKind.ANNOUNCEMENT, event_id, _chatter(payload), text=payload.text)


def _bits_badge(payload: Any, badge: Any, event_id: str, raw: Mapping[str, Any]) -> StreamEvent:
    return _event(payload.broadcaster, EventKind.BITS_BADGE_TIER, event_id, _chatter(payload), amount=badge.tier)


def _charity(payload: Any, donation: Any, event_id: str, raw: Mapping[str, Any]) -> StreamEvent:
    detail = f"{donation.amount.decimal_value} {donation.amount.currency} to {donation.name}"
    return _event(payload.broadcaster, EventKind.CHARITY_DONATION, event_id, _chatter(payload), detail=detail)


def _watch_streak(payload: Any, streak: Any, event_id: str, raw: Mapping[str, Any]) -> StreamEvent:
    who = _chatter(payload)
    return _event(payload.broadcaster, EventKind.WATCH_STREAK, event_id, who, amount=streak.streak, text=payload.text)


def _source_channel(raw: Mapping[str, Any]) -> str:
    # twitchio keeps no source channel on a notice; a shared-chat one names it in the raw event.
    return str(raw.get("source_broadcaster_user_name") or raw.get("source_broadcaster_user_login") or "another channel")


def _shared_sub(payload: Any, sub: Any, event_id: str, raw: Mapping[str, Any]) -> StreamEvent:
    tier = "prime" if sub.prime else sub.tier
    detail = _source_channel(raw)
    return _event(payload.broadcaster, EventKind.SHARED_CHAT_SUB, event_id, _chatter(payload), tier=tier, detail=detail)


def _shared_raid(payload: Any, raid: Any, event_id: str, raw: Mapping[str, Any]) -> StreamEvent:
    who = _who(raid.user, anonymous=False, anonymous_name="a fellow streamer")
    return _event(
        payload.broadcaster,
        EventKind.SHARED_CHAT_RAID,
        event_id,
        who,
        amount=raid.viewer_count,
        detail=_source_channel(raw),
    )


NoticeReader = Callable[[Any, Any, str, Mapping[str, Any]], StreamEvent]
# notice_type -> (twitchio's attribute for its details, the reader)
_NOTICE_READERS: dict[str, tuple[str, NoticeReader]] = {
    "sub": ("sub", _sub),
    "resub": ("resub", _resub),
    "sub_gift": ("sub_gift", _gift),
    "community_sub_gift": ("community_sub_gift", _gift_bomb),
    "raid": ("raid", _raid),
    "pay_it_forward": ("pay_it_forward", _pay_it_forward),
    "gift_paid_upgrade": ("gift_paid_upgrade", _gift_paid_upgrade),
    "prime_paid_upgrade": ("prime_paid_upgrade", _prime_paid_upgrade),
    "announcement": ("announcement", _announcement),
    "bits_badge_tier": ("bits_badge_tier", _bits_badge),
    "charity_donation": ("charity_donation", _charity),
    "watch_streak": ("watch_streak", _watch_streak),
    "shared_chat_sub": ("shared_sub", _shared_sub),
    "shared_chat_raid": ("shared_raid", _shared_raid),
}


def from_follow(delivery: Delivery) -> Converted:
    # A follow carries no id; a viewer follows a channel once, so they are the id (an
    # unfollow-refollow spammer is welcomed once).
    payload = delivery.parsed
    return _event(
        payload.broadcaster, EventKind.FOLLOW, str(payload.user.id), (str(payload.user.id), _name(payload.user))
    )


def from_cheer(delivery: Delivery) -> Converted:
    # A cheer has no id of its own: the envelope's message id is its id, so a redelivery is one cheer.
    payload = delivery.parsed
    who = _who(payload.user, anonymous=bool(payload.anonymous), anonymous_name=ANONYMOUS_CHEERER)
    return _event(
        payload.broadcaster,
        EventKind.CHEER,
        delivered_from(delivery),
        who,
        amount=payload.bits,
        text=payload.message or "",
    )


def from_redemption(delivery: Delivery) -> Converted:
    payload = delivery.parsed
    who = (str(payload.user.id), _name(payload.user))
    return _event(
        payload.broadcaster, EventKind.REDEMPTION, payload.id or delivered_from(delivery), who,
        text=payload.user_input or "", reward=payload.reward.title,
    )  # fmt: skip


def from_stream_online(delivery: Delivery) -> Converted:
    return _stream_change(delivery, EventKind.ONLINE)


def from_stream_offline(delivery: Delivery) -> Converted:
    return _stream_change(delivery, EventKind.OFFLINE)


def _stream_change(delivery: Delivery, kind: EventKind) -> StreamEvent:
    payload = delivery.parsed
    broadcaster = payload.broadcaster
    # The stream's id where Twitch sends one (stream.offline has had it only since 2026), else the envelope's.
    event_id = payload.id or delivered_from(delivery)
    return _event(broadcaster, kind, str(event_id), (str(broadcaster.id), _name(broadcaster)))
