"""Filling a reaction's ``{fields}`` without repeating what viewers chose that moderation forbids.

Names, messages and reward texts come from viewers: a raider whose channel name carries a slur or
a link must not have it read out by the character. Each such field is checked on its own and
swapped for a neutral word, so the thank-you still goes out; the finished line then passes
output moderation like any reply.

A *prompt* (an instruction to the model, not a line to say) never carries those words at all:
:func:`prompt_hint` names each viewer-chosen field by what it is and quotes the words for the
viewer's user turn (see :mod:`engine.prompting.hints`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from engine.events import EventKind, StreamEvent
from engine.prompting.hints import Hint, quoted_details
from personas.stream import template_fields

__all__ = ["NEUTRAL", "REFERENCES", "Judge", "event_fields", "fill", "join_names", "prompt_hint", "safe_event"]

# Fields whose words a viewer chose, and what stands in for them when moderation says no.
NEUTRAL: Mapping[str, str] = {
    "user": "friend",
    "from_channel": "a fellow streamer",
    "names": "new friends",
    "message": "",
    "reward": "a reward",
    "recipient": "a lucky viewer",
    "detail": "",
}
NAME_FIELDS = frozenset({"user", "from_channel", "recipient"})
# How a prompt's system text names each viewer-chosen field; the words themselves are quoted in
# the user turn under the same label. ``args`` is what a viewer typed after a ``!command``.
REFERENCES: Mapping[str, str] = {
    "user": "the viewer",
    "from_channel": "the raiding channel",
    "names": "the new followers",
    "message": "their message",
    "reward": "the reward",
    "recipient": "the recipient",
    "args": "what they wrote after the command",
    "detail": "the event's details",
}


@dataclass(frozen=True, slots=True)
class Judge:
    """Moderation's view of viewer-chosen words: names are judged harder (a slur glued inside)."""

    text: Callable[[str], bool]
    name: Callable[[str], bool]

    def harmful(self, field: str, value: str) -> bool:
        if field not in NEUTRAL or not value:
            return False  # numbers and tiers are ours, not the viewer's
        return (self.name if field in NAME_FIELDS else self.text)(value)


_VIEWERS = frozenset({EventKind.RAID, EventKind.SHARED_CHAT_RAID})
_BITS = frozenset({EventKind.CHEER, EventKind.BITS_BADGE_TIER})
_COUNTS = frozenset({EventKind.GIFT_BOMB, EventKind.WATCH_STREAK})


def event_fields(event: StreamEvent) -> dict[str, str]:
    amount = str(event.amount)
    return {
        "user": event.user_name,
        "from_channel": event.user_name,
        "viewers": amount if event.kind in _VIEWERS else "",
        "bits": amount if event.kind in _BITS else "",
        "months": amount if event.kind is EventKind.RESUB else "",
        "count": amount if event.kind in _COUNTS else "1",
        "detail": event.detail or "",
        "names": event.user_name,
        "reward": event.reward or "",
        "message": event.text,
        "recipient": event.recipient or "",
        "tier": {"2000": "2", "3000": "3"}.get(event.tier or "", "1"),
    }


def fill(template: str, fields: Mapping[str, str], judge: Judge) -> str:
    """``template`` with its fields filled in; viewer-chosen words moderation forbids are replaced."""
    return _format(template, _judged(fields, judge))


def prompt_hint(
    prompt: str, fields: Mapping[str, str], judge: Judge, viewer_chosen: Iterable[str] = REFERENCES
) -> Hint:
    """A prompt as a :class:`Hint`: viewer-chosen fields are named in the instruction (``{user}``
    becomes "the viewer") and their words, judged as in :func:`fill`, quoted for the user turn.

    ``viewer_chosen``: the fields whose words came from viewers here (a timer's ``{user}`` is ours).
    """
    chosen = set(viewer_chosen) & set(REFERENCES)
    safe = _judged(fields, judge)
    instruction = _format(prompt, {**safe, **{name: REFERENCES[name] for name in chosen}})
    used = [name for name in REFERENCES if name in chosen and name in template_fields(prompt)]
    return Hint(instruction, quoted_details([(REFERENCES[name], safe.get(name, "")) for name in used]))


def join_names(names: list[str], total: int, judge: Judge, shown: int = 3) -> str:
    """'Ann, Bo and Cy' or 'Ann, Bo, Cy and 27 others': names moderation forbids are left out."""
    kept = [name for name in names if not judge.name(name)][:shown]
    others = total - len(kept)
    if not kept:
        return NEUTRAL["names"]
    if others > 0:
        return f"{', '.join(kept)} and {others} other{'s' if others > 1 else ''}"
    return kept[0] if len(kept) == 1 else f"{', '.join(kept[:-1])} and {kept[-1]}"


def safe_event(event: StreamEvent, judge: Judge) -> StreamEvent:
    """The event with viewer-chosen words moderation forbids replaced, for the model's eyes."""
    return replace(
        event,
        user_name=NEUTRAL["user"] if judge.harmful("user", event.user_name) else event.user_name,
        text="" if judge.harmful("message", event.text) else event.text,
        reward=NEUTRAL["reward"] if judge.harmful("reward", event.reward or "") else event.reward,
        recipient=NEUTRAL["recipient"] if judge.harmful("recipient", event.recipient or "") else event.recipient,
        detail=NEUTRAL["detail"] if judge.harmful("detail", event.detail or "") else event.detail,
    )


def _judged(fields: Mapping[str, str], judge: Judge) -> dict[str, str]:
    return {name: NEUTRAL[name] if judge.harmful(name, value) else value for name, value in fields.items()}


def _format(template: str, fields: Mapping[str, str]) -> str:
    return " ".join(template.format_map(_Blank(fields)).split())


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""
