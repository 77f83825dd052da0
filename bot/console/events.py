"""``/event raid 50 from SomeStreamer`` in the console: a stream event typed by hand, so a streamer
can see (and tune) the card's reactions before going live.

    /event KIND [AMOUNT] [from NAME] [reward TITLE] [: MESSAGE]

KIND is a stream event kind (follow, sub, resub, gift, gift_bomb, raid, cheer, redemption,
online, offline); AMOUNT the viewers, bits, months or gifted subs; NAME who did it (a made-up
viewer when left out); TITLE a channel-point reward's title; MESSAGE the viewer's own words (a
resub or cheer message, a redemption's input):

    /event raid 50 from SomeStreamer
    /event cheer 100 from Ann: great run!
    /event redemption from Ann reward Ask Pip: what is your favourite level?
"""

from __future__ import annotations

import uuid

from engine.events import EventKind, StreamEvent

__all__ = ["EVENT_USAGE", "parse_console_event"]

_KINDS = [kind.value for kind in EventKind if kind is not EventKind.JOIN]  # join: Discord servers only
EVENT_USAGE = f"/event KIND [AMOUNT] [from NAME] [reward TITLE] [: MESSAGE]; KIND is one of {', '.join(_KINDS)}"
DEFAULT_VIEWER = "SomeViewer"


def parse_console_event(argument: str, platform: str, channel_id: str) -> StreamEvent:
    """The event ``argument`` describes; ValueError (with :data:`EVENT_USAGE`) when it is not one."""
    head, colon, message = argument.partition(":")
    words = head.split()
    if not words or words[0].casefold() not in _KINDS:
        raise ValueError(f"usage: {EVENT_USAGE}")
    kind = EventKind(words[0].casefold())
    amount = 0
    name = DEFAULT_VIEWER
    reward: str | None = None
    rest = words[1:]
    if rest and rest[0].isdigit():
        amount, rest = int(rest[0]), rest[1:]
    if len(rest) >= 2 and rest[0].casefold() in ("from", "by"):
        name, rest = rest[1], rest[2:]
    if len(rest) >= 2 and rest[0].casefold() == "reward":
        reward, rest = " ".join(rest[1:]), []
    if rest:
        raise ValueError(f"did not understand {' '.join(rest)!r}; usage: {EVENT_USAGE}")
    return StreamEvent(
        platform=platform,
        channel_id=channel_id,
        kind=kind,
        event_id=f"console-{uuid.uuid4().hex[:12]}",
        user_id=name.casefold(),
        user_name=name,
        amount=amount,
        text=message.strip() if colon else "",
        reward=reward,
    )
