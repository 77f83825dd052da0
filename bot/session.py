"""The one chat session every platform runs: hear → director → commands → scheduler → send → ``link_sent``.

An adapter only translates. It turns the platform's messages into :class:`~engine.events.ChatEvent`
and :class:`~engine.events.StreamEvent` and hands them to :meth:`ChatSession.take_line` and
:meth:`ChatSession.take_stream`; it gives the session an :class:`Outlet` that puts text into the
platform. Everything between is here, once:

1. ``manager.hear`` stores and judges the line (a refusal is reported once a minute, with a count);
   a redelivered line stops there;
2. the stream director counts it (timers, proactive talk);
3. the viewer and moderator commands (:mod:`bot.commands`, rendered with the platform's prefix) and
   then the card's ``!commands`` (the director) take it if it is one;
4. the rest goes to the :class:`~engine.flow.scheduler.ReplyScheduler` (live platforms), or is
   handed back to be answered in turn (the console and replay read one line at a time);
5. :meth:`ChatSession.answer` generates the reply, the outlet sends it within the channel's
   :class:`~engine.flow.ratelimit.SendBudget` (the platform's own limits), and ``manager.link_sent``
   links the stored reply to the platform's message id.

The director's reactions, timers and command answers leave through the same outlet and budget.
"""

from __future__ import annotations

import contextlib
import enum
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from bot.commands import CommandResult, PlatformCommands
from bot.errors import one_line
from engine.base.clock import Clock, MonotonicClock
from engine.base.cooldown import Cooldown
from engine.base.recent import RecentlyUsed
from engine.control.room import PlatformStatus
from engine.errors import EngineError
from engine.events import ChatEvent, Reply, StreamEvent
from engine.flow.ratelimit import SendBudget, SendReservation
from engine.flow.scheduler import ReplyScheduler, SchedulerConfig
from engine.heard import HeardLine
from engine.manager import ConversationManager
from engine.settings import Settings
from engine.stream.director import StreamDirector
from engine.stream.outlet import Utterance

__all__ = ["ChatSession", "NotSent", "Outlet", "SendLimits", "StreamingOutlet", "Taken"]

logger = logging.getLogger(__name__)

REFUSAL_REPORT_S = 60.0  # lines memory refused are reported at most this often, with their count


class NotSent(Exception):
    """Raised by an outlet that sent nothing and never reached the platform (the send is not counted)."""


class Outlet(Protocol):
    """What a platform gives the session: text into a channel. The platform's message id, or None
    when the platform was asked and nothing went out (that send still counts against the budget).

    An outlet may also say ``paused_for(channel_id) -> float``: clock seconds until the platform takes
    sends again (0: now; ``math.inf``: not today, YouTube's spent quota). While it is paused the
    channel's budget has no room, so nothing is generated that could not be sent.
    """

    async def send(self, channel_id: str, text: str, *, reply_to: str | None, said: Reply | None) -> str | None:
        """``said``: the stored line when the text is the character's (a reply, a reaction), else None."""
        ...


class StreamingOutlet(Outlet, Protocol):
    """An outlet that writes a reply itself (Discord splits it, and edits it in place while
    ``streams``): it gets the text snapshots (only the final one unless ``streams``), returns the
    message id. An engine error raised through it has already been retracted from the platform."""

    streams: bool

    async def write_reply(self, heard: HeardLine, snapshots: AsyncIterator[str]) -> str | None: ...


@dataclass(frozen=True, slots=True)
class SendLimits:
    """A platform's send limit per channel: ``limit`` messages in any ``window_s`` seconds."""

    limit: int
    window_s: float = 30.0


class _PlatformBudget(SendBudget):
    """A channel's send budget that also has no room while the platform pauses sending."""

    def __init__(self, limits: SendLimits, clock: Clock, paused: Callable[[], float]) -> None:
        super().__init__(limits.limit, limits.window_s, clock=clock)
        self.paused = paused

    def reserve(self) -> SendReservation | None:
        return None if self.paused() > 0 else super().reserve()

    def wait_time(self) -> float:
        return max(self.paused(), super().wait_time())

    async def reserve_urgent(self, max_wait_s: float) -> SendReservation | None:
        pause = self.paused()
        if pause > max_wait_s:
            return None
        if pause > 0:
            await self.clock.sleep(pause)
        return await super().reserve_urgent(max_wait_s - pause)


class Taken(enum.Enum):
    REFUSED = "refused"  # memory refused it: never stored, never answered
    REDELIVERED = "redelivered"  # the platform sent a stored line again
    COMMAND = "command"  # a viewer, moderator or card command took it
    QUEUED = "queued"  # handed to the scheduler
    TO_ANSWER = "to_answer"  # no scheduler: the caller answers it in turn (console, replay)
    LEFT = "left"  # no scheduler, and not to be answered (not addressed, or moderation blocked it)


@dataclass(frozen=True, slots=True)
class TakenLine:
    taken: Taken
    heard: HeardLine | None = None


class ChatSession:
    """One platform's chat, from the line heard to the reply linked. See the module docstring."""

    def __init__(
        self,
        manager: ConversationManager,
        outlet: Outlet,
        *,
        platform: str,
        settings: Settings,
        send_limits: SendLimits | None = None,
        scheduler: SchedulerConfig | None = None,
        commands: PlatformCommands | None = None,
        clock: Clock | None = None,
        fallback_override: str | None = None,
        on_persona_changed: Callable[[str], None] | None = None,
        director_tick_s: float = 1.0,
    ) -> None:
        self.manager = manager
        self.outlet = outlet
        self.platform = platform
        self.settings = settings
        self.clock: Clock = clock or MonotonicClock()
        self.send_limits = send_limits
        self.commands = commands
        self.fallback_override = fallback_override
        self.on_persona_changed = on_persona_changed
        kept = settings.core.channels_kept
        # A budget still counting a send must stay, or the next send could break the platform's limit.
        self.budgets: RecentlyUsed[str, SendBudget] = RecentlyUsed(
            kept, evictable=lambda budget: not budget.in_window()
        )
        self.scheduler: ReplyScheduler | None = None
        if scheduler is not None:
            self.scheduler = ReplyScheduler(
                self._answer_reserved,
                scheduler,
                clock=self.clock,
                budget_for=lambda event: self.budget_for(event.channel_id),
                on_outcome=manager.line_outcome,  # dropped lines by reason in /metrics, each on the dashboard
            )
            scheduler_now = self.scheduler
            manager.control.register_platform(
                platform,
                PlatformStatus(
                    budgets=lambda: {
                        channel: (budget.in_window(), budget.limit) for channel, budget in self.budgets.items()
                    },
                    queued=lambda: scheduler_now.queued,
                ),
            )
        self.director = StreamDirector(
            manager, self._speak, settings=settings.stream, clock=self.clock, channels_kept=kept, tick_s=director_tick_s
        )
        # Hearing's spoken answers, when also written in chat (COSTAR_HEARING_REPLY_IN_CHAT), leave
        # through the same outlet, budget and mute check as the director's lines.
        manager.chats.open(platform, self._speak)
        self.taking_lines = True
        self._refusals_told: Cooldown[str] = Cooldown(REFUSAL_REPORT_S, clock=self.clock)
        self._refused_lines = 0

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.start()
        await self.director.start()

    async def drain(self, grace_s: float) -> None:
        """Stop taking lines; replies already being written get ``grace_s`` to be sent."""
        self.taking_lines = False
        if self.scheduler is not None:
            await self.scheduler.drain(grace_s)

    async def close(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.close()
        await self.director.close()

    def budget_for(self, channel_id: str) -> SendBudget | None:
        limits = self.send_limits
        if limits is None:
            return None
        paused_for = getattr(self.outlet, "paused_for", None)
        if paused_for is None:
            return self.budgets.setdefault(
                channel_id, lambda: SendBudget(limits.limit, limits.window_s, clock=self.clock)
            )
        return self.budgets.setdefault(
            channel_id, lambda: _PlatformBudget(limits, self.clock, lambda: float(paused_for(channel_id)))
        )

    # -- in ---------------------------------------------------------------------------------

    async def take_line(self, event: ChatEvent) -> TakenLine:
        """A chat line: stored and judged, then a command's or queued for an answer.

        Without a scheduler (a caller that answers in turn) memory's refusal is raised to the caller,
        which says so where the user reads; a live platform's is logged once a minute with a count.
        """
        try:
            # Memory holds a line through a lock or a full disk (the line waits here meanwhile);
            # an error means it was refused, never stored, so it was never taken.
            heard = await self.manager.hear(event)
        except EngineError as exc:
            if self.scheduler is None:
                raise
            self._report_refused(exc)
            return TakenLine(Taken.REFUSED)
        if heard.redelivered:  # delivered at least once: the first delivery was taken and answered
            return TakenLine(Taken.REDELIVERED, heard)
        self.director.chat_heard(heard)
        if self.commands is not None and self.commands.is_command(heard.event):
            await self.run_command(heard.event)
            return TakenLine(Taken.COMMAND, heard)
        if await self.director.command(heard):  # the channel's own !commands
            return TakenLine(Taken.COMMAND, heard)
        if self.scheduler is None:
            answerable = heard.event.addresses_bot and not heard.blocked
            return TakenLine(Taken.TO_ANSWER if answerable else Taken.LEFT, heard)
        # A blocked line is stored but never answered; the scheduler still sees it for copypasta.
        self.scheduler.submit(heard)
        return TakenLine(Taken.QUEUED, heard)

    async def take_stream(self, stream: StreamEvent) -> HeardLine | None:
        """A stream event (a sub, a raid, a Super Chat): stored, then maybe a reaction."""
        try:
            heard = await self.manager.hear(stream)
        except EngineError as exc:
            logger.error(
                "could not take a %s event in %s channel %s: %s",
                stream.kind,
                stream.platform,
                stream.channel_id,
                one_line(exc),
            )
            return None
        await self.director.take(heard)
        return heard

    def _report_refused(self, exc: EngineError) -> None:
        """Say why lines are not taken once a minute, with how many, not once per line of a flood."""
        self._refused_lines += 1
        if self._refusals_told.try_use("refused"):
            logger.error("could not take %d %s line(s): %s", self._refused_lines, self.platform, one_line(exc))
            self._refused_lines = 0

    async def run_command(self, event: ChatEvent) -> CommandResult | None:
        """One of the commands: run, its effects applied, its answer sent within the budget."""
        assert self.commands is not None
        result = await self.commands.handle(event)
        if result is None:
            return None
        if result.persona_changed and self.on_persona_changed is not None:
            self.on_persona_changed(event.channel_id)
        if result.forgot and self.scheduler is not None:
            self.scheduler.drop_author(event.platform, event.author_id)
        if result.reply:
            budget = self.budget_for(event.channel_id)
            await self._send(event.channel_id, result.reply, budget.reserve() if budget else None, event.message_id)
        return result

    # -- out --------------------------------------------------------------------------------

    async def answer(self, heard: HeardLine) -> Reply | None:
        """Answer a line now, in turn (the console, replay): generate, send, link. The stored reply,
        or None. An engine error is raised: the caller says it where its user reads."""
        budget = self.budget_for(heard.event.channel_id)
        reservation = budget.reserve() if budget is not None else None
        if budget is not None and reservation is None:
            return None  # no room in the send budget
        reply, _ = await self._write(heard, reservation)
        return reply

    async def _answer_reserved(self, heard: HeardLine, reservation: SendReservation | None) -> bool:
        """The scheduler's handler: True when the platform took the message. A failure is said as
        the fallback line (or silence), never raised."""
        event = heard.event
        try:
            _, sent_id = await self._write(heard, reservation)
        except EngineError as exc:
            logger.warning("no reply in %s channel %s: %s", event.platform, event.channel_id, exc)
            apology = await self.manager.fallback_reply(event, override=self.fallback_override)
            return (
                apology is not None
                and await self._send(event.channel_id, apology, reservation, event.message_id) is not None
            )
        return sent_id is not None

    async def _write(self, heard: HeardLine, reservation: SendReservation | None) -> tuple[Reply | None, str | None]:
        write_reply = getattr(self.outlet, "write_reply", None)
        if write_reply is None:  # the platform takes a reply whole
            reply = await self.manager.reply(heard)
            if reply is None or not reply.text.strip():
                if reservation is not None:
                    reservation.cancel()
                return reply, None
            sent_id = await self._send(heard.event.channel_id, reply.text, reservation, heard.event.message_id, reply)
        else:
            reply, sent_id = await self._written(heard, reservation, write_reply)
        if reply is not None and sent_id is not None:
            # Lets a later reply-to-this-message find the stored line.
            await self.manager.link_sent(reply, sent_id)
        return reply, sent_id

    async def _written(
        self,
        heard: HeardLine,
        reservation: SendReservation | None,
        write_reply: Callable[[HeardLine, AsyncIterator[str]], Awaitable[str | None]],
    ) -> tuple[Reply | None, str | None]:
        finished: list[Reply] = []
        # Snapshots only where the platform shows them (post-processing each one costs).
        streams = bool(getattr(self.outlet, "streams", True))

        async def snapshots() -> AsyncGenerator[str, None]:
            shown = None
            async with contextlib.aclosing(self.manager.generate(heard, snapshots=streams)) as items:
                async for item in items:
                    if isinstance(item, Reply):
                        finished.append(item)
                        if item.text != shown:  # without snapshots a watched stage gets only the Reply
                            yield item.text
                    else:
                        shown = item
                        yield item

        try:
            # Closed at once when showing fails: the generator holds the channel's turn and a slot.
            async with contextlib.aclosing(snapshots()) as shown:
                sent_id = await write_reply(heard, shown)
        finally:
            if reservation is not None:
                reservation.sent()
        return (finished[0] if finished else None), sent_id

    async def _speak(self, utterance: Utterance) -> str | None:
        """The director's speaker: reactions wait (a while) for room ahead of replies."""
        budget = self.budget_for(utterance.channel_id)
        reservation: SendReservation | None = None
        if budget is not None:
            if utterance.urgent:
                reservation = await budget.reserve_urgent(self.settings.stream.reaction_wait_s)
            else:
                reservation = budget.reserve()
            if reservation is None:
                return None
        return await self._send(utterance.channel_id, utterance.text, reservation, utterance.reply_to, utterance.reply)

    async def _send(
        self,
        channel_id: str,
        text: str,
        reservation: SendReservation | None,
        reply_to: str | None,
        said: Reply | None = None,
    ) -> str | None:
        """Through the outlet, settling the reservation on what happened; the message id or None."""
        if reservation is None and self.send_limits is not None:
            return None  # no room in the send budget
        if self.manager.muted(f"{self.platform}:{channel_id}"):  # muted while this waited for room
            if reservation is not None:
                reservation.cancel()
            return None
        try:
            sent_id = await self.outlet.send(channel_id, text, reply_to=reply_to, said=said)
        except NotSent:
            if reservation is not None:
                reservation.cancel()
            return None
        finally:
            if reservation is not None:
                reservation.sent()  # counted even when refused: we cannot know the platform did not count it
        return sent_id
