"""EventSub stream events as Twitch really sends them, read through twitchio 3 without losing any.

twitchio builds its event objects with ``event["field"]`` for every field it knows, so a
notification that lacks one raises inside its websocket reader, which logs CRITICAL and drops
it: a ``stream.offline`` without ``id`` (the field came in 2026; older senders and Twitch's CLI
leave it out, twitchio 3.3.2 raises ``KeyError: 'id'``), a 2023 chat notification without the
``shared_chat_*`` fields, a resub without ``is_prime``, a ``message`` of ``null``.

:func:`install` wraps twitchio's parser for the subscription types costar reacts to, so each
notification reaches the adapter as a :class:`Delivery`: twitchio's object, the raw event and
the envelope's ``metadata.message_id`` (the de-duplication key: a redelivery repeats it). When
twitchio cannot read the event, it is read again with the missing fields filled with what their
absence means (no id, no shared chat, not Prime, no message), and the delivery says what was
wrong so the adapter can tell the operator once per kind. One that still cannot be read arrives
with ``parsed=None``: the adapter says it was lost, and why.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import twitchio.eventsub.websockets

__all__ = ["STREAM_EVENT_TYPES", "Delivery", "install", "with_defaults"]

# What a field EventSub left out (or sent as null) means, per subscription type. Only fields
# twitchio reads with ``event["field"]`` need one.
_NOTICES = (
    "sub", "resub", "sub_gift", "community_sub_gift", "gift_paid_upgrade", "prime_paid_upgrade", "raid", "unraid",
    "pay_it_forward", "announcement", "bits_badge_tier", "charity_donation", "modiversary", "watch_streak",
)  # fmt: skip
_EVENT_DEFAULTS: dict[str, dict[str, Any]] = {
    "channel.chat.notification": {
        "chatter_is_anonymous": False,
        "color": "",
        "badges": [],
        "system_message": "",
        "message_id": "",
        "message": {"text": "", "fragments": []},
        **{notice: None for notice in _NOTICES},
        **{f"shared_chat_{notice}": None for notice in _NOTICES},
    },
    "channel.cheer": {"is_anonymous": False, "message": "", "user_id": None, "user_login": None, "user_name": None},
    "channel.channel_points_custom_reward_redemption.add": {"user_input": "", "status": "unfulfilled"},
    "stream.online": {"id": None, "type": "live"},
    "stream.offline": {"id": None},
}
_GIFTER = {"gifter_is_anonymous": False, "gifter_user_id": None, "gifter_user_login": None, "gifter_user_name": None}
_NOTICE_DEFAULTS: dict[str, dict[str, Any]] = {
    "sub": {"is_prime": False, "duration_months": 1},
    "resub": {"is_prime": False, "is_gift": False, "duration_months": 1, "streak_months": None, **_GIFTER},
    "sub_gift": {"duration_months": 1, "cumulative_total": None, "community_gift_id": None},
    "community_sub_gift": {"cumulative_total": None},
    "gift_paid_upgrade": _GIFTER,
    "pay_it_forward": _GIFTER,
    "raid": {"profile_image_url": ""},
}
STREAM_EVENT_TYPES = frozenset({*_EVENT_DEFAULTS, "channel.follow"})


@dataclass(frozen=True, slots=True)
class Delivery:
    """One EventSub notification of a stream event, as costar's handlers receive it."""

    subscription_type: str
    message_id: str  # the envelope's metadata.message_id: a redelivery carries the same one
    event: Mapping[str, Any]  # the event as Twitch sent it
    parsed: Any  # twitchio's object for it; None when it could not be read even with defaults
    problem: str | None = None  # why twitchio could not read the event as sent

    @property
    def kind(self) -> str:
        """What it is, for the log: ``stream.offline``, ``channel.chat.notification (resub)``."""
        notice = self.event.get("notice_type")
        return f"{self.subscription_type} ({notice})" if notice else self.subscription_type


def with_defaults(subscription_type: str, event: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``event`` with the fields EventSub left out (or sent as null) filled in."""
    filled = _filled(copy.deepcopy(dict(event)), _EVENT_DEFAULTS.get(subscription_type, {}))
    notice = str(filled.get("notice_type") or "")
    for key in (notice, f"shared_chat_{notice.removeprefix('shared_chat_')}"):
        if isinstance(filled.get(key), dict):
            filled[key] = _filled(filled[key], _NOTICE_DEFAULTS.get(key.removeprefix("shared_chat_"), {}))
    return filled


def _filled(event: dict[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    for key, default in defaults.items():
        value = event.get(key)
        if value is None:
            event[key] = copy.deepcopy(default)
        elif isinstance(default, dict) and isinstance(value, dict):
            _filled(value, default)  # e.g. a message without fragments
    return event


Parser = Callable[..., Any]


def install() -> None:
    """Make twitchio's websocket hand costar's stream events over as :class:`Delivery` (once per process)."""
    module = twitchio.eventsub.websockets
    parse: Parser = module.create_event_instance
    if getattr(parse, "costar_delivery", False):
        return
    setattr(module, "create_event_instance", _delivering(parse))  # noqa: B010 - twitchio's module global


def _delivering(parse: Parser) -> Parser:
    @functools.wraps(parse)
    def create_event_instance(event_type: str, raw_data: Any, *, http: Any = None, headers: Any = None) -> Any:
        if event_type not in STREAM_EVENT_TYPES:
            return parse(event_type, raw_data, http=http, headers=headers)  # chat lines: twitchio's own way
        event = raw_data["payload"]["event"]
        message_id = str(raw_data.get("metadata", {}).get("message_id") or "")
        try:
            parsed = parse(event_type, raw_data, http=http, headers=headers)
            return Delivery(event_type, message_id, event, parsed)
        except Exception as exc:  # any field twitchio cannot read; the reason goes to the log
            problem = f"{type(exc).__name__}: {exc}"
        repaired = {**raw_data, "payload": {**raw_data["payload"], "event": with_defaults(event_type, event)}}
        try:
            parsed = parse(event_type, repaired, http=http, headers=headers)
        except Exception as exc:
            return Delivery(
                event_type, message_id, event, None, f"{problem}; with defaults: {type(exc).__name__}: {exc}"
            )
        return Delivery(event_type, message_id, event, parsed, problem)

    create_event_instance.costar_delivery = True  # type: ignore[attr-defined]
    return create_event_instance
