"""What the manager made of one chat line, and how urgently it may be answered.

:meth:`engine.manager.ConversationManager.hear` returns a :class:`HeardLine` for every line it
stores; callers pass that value on unchanged — to the reply scheduler, or straight back to the
manager to answer it — so the verdict travels with the line instead of being looked up again.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from engine.base.repeats import NOT_COUNTED, Seen
from engine.events import MODERATING_ROLES, ChatEvent, Role, StreamEvent, Verdict
from personas.moderation_rules import Action

__all__ = ["HeardLine", "Priority", "priority_of", "social_rank"]


class Priority(enum.IntEnum):
    """Lower goes first. Addressed lines are further ranked by the classes below them."""

    ADDRESSED = 0
    MODERATOR = 1
    FIRST_MESSAGE = 2
    QUESTION = 3
    OTHER = 4


def priority_of(event: ChatEvent) -> Priority:
    if event.addresses_bot:
        return Priority.ADDRESSED
    return social_rank(event)


def social_rank(event: ChatEvent) -> Priority:
    """Who is speaking and how: the rank among lines of the same addressing."""
    if event.roles & MODERATING_ROLES:
        return Priority.MODERATOR
    if event.is_first_message:
        return Priority.FIRST_MESSAGE
    if "?" in event.text:
        return Priority.QUESTION
    return Priority.OTHER


@dataclass(slots=True)
class HeardLine:
    """A stored chat line with input moderation's view of it.

    ``event`` is the line as stored, with ``is_first_message`` set for a first-time chatter.
    ``verdict`` is decided when the line arrives if it addresses the character; a line the
    character chimes in on unasked is judged when it is answered, with the repeat count
    (``repeats``) from when it arrived: the one count of the line's copies in its channel, which
    moderation's copypasta rule and the reply scheduler's duplicate and wave rules both read. ``stored_at`` lets latency figures tell storing from
    judging.

    For a stream event, ``event`` is its stored line and ``stream`` the event itself
    (``redelivered`` again when EventSub delivered the same event twice).
    """

    event: ChatEvent
    repeats: Seen = NOT_COUNTED
    verdict: Verdict | None = None
    stored_at: float = 0.0  # time.perf_counter() when the commit returned: splits latency figures
    redelivered: bool = False  # the platform sent this message again: already stored, never answered twice
    stream: StreamEvent | None = None

    @property
    def blocked(self) -> bool:
        """Moderation said never answer it (it is stored all the same)."""
        return self.verdict is not None and self.verdict.action is Action.DROP

    @property
    def priority(self) -> Priority:
        return priority_of(self.event)

    @property
    def from_host(self) -> bool:
        """Spoken by the streamer into the microphone (engine.hearing), not typed in chat."""
        return Role.HOST in self.event.roles

    @property
    def urgency(self) -> tuple[int, int]:
        """Sorts most urgent first: the host's own voice, addressed lines, then :func:`social_rank`."""
        if self.from_host:  # the streamer is talking to the co-host live: chat waits
            return (-1, 0)
        return (0 if self.event.addresses_bot else 1, int(social_rank(self.event)))
