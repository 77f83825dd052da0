"""Twitch stream events through EventSub: which subscriptions the tokens allow, and twitchio's
payloads as neutral :class:`engine.stream.events.StreamEvent` values.

=====================================================  ===========================  ===============
subscription                                           scope (any of)               whose token
=====================================================  ===========================  ===============
``channel.chat.notification`` (subs, resubs, gifts,    ``user:read:chat``           the bot's
community gifts, raids)
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

from collections.abc import Callable
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

from bot.twitch_auth import BROADCASTER_SCOPES
from engine.stream.events import EventKind, StreamEvent

__all__ = [
    "BROADCASTER_SCOPES",
    "EVENT_SUBSCRIPTIONS",
    "EventSubscription",
    "TokenScopes",
    "from_cheer",
    "from_follow",
    "from_notification",
    "from_redemption",
    "from_stream_change",
    "plan_subscriptions",
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


def _name(user: Any) -> str:
    return str(user.display_name or user.name or user.id)


def _event(broadcaster: Any, kind: EventKind, event_id: str, user: Any, **fields: Any) -> StreamEvent:
    return StreamEvent(
        platform=PLATFORM,
        channel_id=str(broadcaster.id),
        kind=kind,
        event_id=event_id,
        user_id=str(user.id),
        user_name=_name(user),
        **fields,
    )


def from_notification(payload: Any) -> StreamEvent | None:
    """A ``channel.chat.notification``; None for notice types costar does not react to."""
    notice, channel, chatter, notice_id = payload.notice_type, payload.broadcaster, payload.chatter, payload.id
    if notice == "sub" and payload.sub is not None:
        tier = "prime" if payload.sub.prime else payload.sub.tier
        return _event(channel, EventKind.SUB, notice_id, chatter, tier=tier)
    if notice == "resub" and payload.resub is not None:
        months = payload.resub.cumulative_months
        return _event(
            channel, EventKind.RESUB, notice_id, chatter, amount=months, text=payload.text, tier=payload.resub.tier
        )
    if notice == "sub_gift" and payload.sub_gift is not None:
        gift = payload.sub_gift
        return _event(
            channel,
            EventKind.GIFT,
            notice_id,
            chatter,
            amount=1,
            tier=gift.tier,
            group_id=gift.community_gift_id,
            recipient=_name(gift.recipient),
        )
    if notice == "community_sub_gift" and payload.community_sub_gift is not None:
        bomb = payload.community_sub_gift
        return _event(channel, EventKind.GIFT_BOMB, bomb.id or notice_id, chatter, amount=bomb.total, tier=bomb.tier)
    if notice == "raid" and payload.raid is not None:
        raid = payload.raid
        return _event(channel, EventKind.RAID, notice_id, raid.user, amount=raid.viewer_count)
    return None


def from_follow(payload: Any) -> StreamEvent:
    # A follow carries no id; a viewer follows a channel once, so they are the id (an
    # unfollow-refollow spammer is welcomed once).
    return _event(payload.broadcaster, EventKind.FOLLOW, str(payload.user.id), payload.user)


def from_cheer(payload: Any, delivery_id: str) -> StreamEvent:
    user = payload.user
    if payload.anonymous or user is None:
        return StreamEvent(
            PLATFORM, str(payload.broadcaster.id), EventKind.CHEER, delivery_id, "anonymous", "an anonymous cheerer",
            amount=payload.bits, text=payload.message,
        )  # fmt: skip
    return _event(payload.broadcaster, EventKind.CHEER, delivery_id, user, amount=payload.bits, text=payload.message)


def from_redemption(payload: Any) -> StreamEvent:
    return _event(
        payload.broadcaster,
        EventKind.REDEMPTION,
        payload.id,
        payload.user,
        text=payload.user_input,
        reward=payload.reward.title,
    )


def from_stream_change(payload: Any, online: bool) -> StreamEvent:
    broadcaster = payload.broadcaster
    kind = EventKind.ONLINE if online else EventKind.OFFLINE
    # stream.offline carries no id; one offline per stream id would need state we do not keep.
    event_id = getattr(payload, "id", None) or f"{broadcaster.id}-{kind.value}-{id(payload)}"
    return _event(broadcaster, kind, str(event_id), broadcaster)
