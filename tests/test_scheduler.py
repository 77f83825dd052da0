"""The reply scheduler and the send budget: who gets answered under a flood, and how often we send."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from engine.base.clock import ManualClock
from engine.events import ChatEvent, Role
from engine.flow.ratelimit import SendBudget, SendReservation, most_in_any_window
from engine.flow.scheduler import Outcome, ReplyScheduler, SchedulerConfig
from engine.heard import HeardLine, Priority
from engine.moderation.moderator import Moderator
from engine.moderation.normalize import normalise_text
from engine.settings import ModerationSettings
from personas.card import PersonaCard
from personas.moderation_rules import Action

pytestmark = pytest.mark.timeout(30)

_ids = itertools.count()


def line(
    text: str,
    author: str = "viewer",
    *,
    addressed: bool = True,
    roles: frozenset[Role] = frozenset(),
    channel: str = "chan",
    first: bool = False,
) -> HeardLine:
    """A line as the manager hands it on after hearing it (not blocked by moderation)."""
    return HeardLine(
        ChatEvent(
            platform="test",
            channel_id=channel,
            author_id=author,
            author_name=author,
            text=text,
            message_id=f"m{next(_ids)}",
            roles=roles,
            addresses_bot=addressed,
            is_first_message=first,
        )
    )


def counted(counter: Moderator, heard: HeardLine) -> HeardLine:
    """The line with its one repeat count, as the manager's ``hear`` counts it on arrival."""
    heard.repeats = counter.count_repeats(heard.event)
    return heard


class RecordingHandler:
    """Answers every line it is given (sending when the budget allows) and records the order."""

    def __init__(self, *, gate: asyncio.Event | None = None, send: bool = True) -> None:
        self.answered: list[ChatEvent] = []
        self.gate = gate
        self.send = send
        self.running = 0
        self.most_running = 0

    async def __call__(self, heard: HeardLine, reservation: SendReservation | None) -> bool:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            self.answered.append(heard.event)
            if reservation is not None:
                if self.send:
                    reservation.sent()
                else:
                    reservation.cancel()
            return self.send
        finally:
            self.running -= 1


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


# -- the send budget --------------------------------------------------------------------------


def test_budget_refuses_the_send_past_its_limit() -> None:
    clock = ManualClock()
    budget = SendBudget(3, clock=clock)
    reservations = [budget.reserve() for _ in range(3)]
    assert all(reservations)
    for reservation in reservations:
        assert reservation is not None
        reservation.sent()
    assert budget.reserve() is None
    assert budget.wait_time() == pytest.approx(30.0)


async def test_budget_frees_a_slot_a_full_window_after_the_response() -> None:
    clock = ManualClock()
    budget = SendBudget(1, clock=clock)
    first = budget.reserve()
    assert first is not None
    await clock.advance(5)  # the request took 5 s: the window starts at its response
    first.sent()
    await clock.advance(29.9)
    assert budget.reserve() is None
    await clock.advance(0.1)
    assert budget.reserve() is not None


def test_window_count_finds_the_busiest_30_seconds() -> None:
    assert most_in_any_window([0, 10, 29.9, 30, 59.9]) == 3
    assert most_in_any_window([]) == 0


def test_cancelled_reservation_does_not_count() -> None:
    budget = SendBudget(1, clock=ManualClock())
    reservation = budget.reserve()
    assert reservation is not None
    reservation.cancel()
    reservation.sent()  # settling twice does nothing
    assert budget.in_window() == 0
    assert budget.total_sent == 0


def test_sends_in_flight_hold_their_slot() -> None:
    budget = SendBudget(2, clock=ManualClock())
    assert budget.reserve() is not None
    assert budget.reserve() is not None
    assert budget.reserve() is None


def test_raising_the_limit_for_a_moderator_opens_room_at_once() -> None:
    budget = SendBudget(20, clock=ManualClock())
    for _ in range(20):
        reservation = budget.reserve()
        assert reservation is not None
        reservation.sent()
    assert budget.reserve() is None
    budget.limit = 100
    assert budget.reserve() is not None


# -- deciding what to answer -----------------------------------------------------------------


def test_priority_orders_addressed_then_mods_first_timers_questions() -> None:
    assert line("hi pip").priority is Priority.ADDRESSED
    assert line("hi", addressed=False, roles=frozenset({Role.MODERATOR})).priority is Priority.MODERATOR
    assert line("hi", addressed=False, first=True).priority is Priority.FIRST_MESSAGE
    assert line("why?", addressed=False).priority is Priority.QUESTION
    assert line("hi", addressed=False).priority is Priority.OTHER


def test_normalised_text_ignores_case_punctuation_and_spacing_but_keeps_emoji() -> None:
    assert normalise_text("  Hello,   WORLD!! ") == "hello world"
    assert normalise_text("👸🏾🤴🏽") != normalise_text("lol")


async def test_unaddressed_lines_are_ignored_unless_chiming_in() -> None:
    quiet = ReplyScheduler(RecordingHandler(), clock=ManualClock())
    assert quiet.submit(line("just chatting", addressed=False)) is Outcome.IGNORED
    chatty = ReplyScheduler(RecordingHandler(), SchedulerConfig(answer_unaddressed=True), clock=ManualClock())
    assert chatty.submit(line("just chatting", addressed=False)) is Outcome.QUEUED


async def test_author_repeating_a_line_is_a_duplicate() -> None:
    counter = Moderator(ModerationSettings(), clock=ManualClock())
    scheduler = ReplyScheduler(RecordingHandler(), clock=ManualClock())
    assert scheduler.submit(counted(counter, line("pip, hello!", "ann"))) is Outcome.QUEUED
    assert scheduler.submit(counted(counter, line("Pip hello", "ann"))) is Outcome.DUPLICATE
    assert scheduler.submit(counted(counter, line("pip, hello!", "bob"))) is Outcome.QUEUED


async def test_the_scheduler_reads_the_lines_one_repeat_count_and_keeps_none_of_its_own() -> None:
    scheduler = ReplyScheduler(RecordingHandler(), SchedulerConfig(copypasta_users=2), clock=ManualClock())
    # Never counted (no manager heard them): nothing says they repeat, so nothing is dropped as one.
    outcomes = [scheduler.submit(line("pip, hello!", author)) for author in ("ann", "ann", "bob")]
    assert outcomes == [Outcome.QUEUED] * 3


async def test_a_line_the_platform_delivered_again_is_never_queued() -> None:
    handler = RecordingHandler()
    scheduler = ReplyScheduler(handler, clock=ManualClock())
    await scheduler.start()
    again = line("hi pip, once")
    again.redelivered = True  # the manager found its message id already stored
    assert scheduler.submit(again) is Outcome.REDELIVERED
    await settle()
    await scheduler.close()
    assert handler.answered == []


async def test_a_line_pasted_by_many_chatters_is_copypasta() -> None:
    counter = Moderator(ModerationSettings(), clock=ManualClock())
    scheduler = ReplyScheduler(RecordingHandler(), SchedulerConfig(copypasta_users=3), clock=ManualClock())
    outcomes = [scheduler.submit(counted(counter, line("pip is a bot LUL", f"user{i}"))) for i in range(5)]
    assert outcomes == [Outcome.QUEUED, Outcome.QUEUED, Outcome.COPYPASTA, Outcome.COPYPASTA, Outcome.COPYPASTA]


async def test_copypasta_memory_ends_with_moderations_copypasta_window() -> None:
    clock = ManualClock()
    counter = Moderator(ModerationSettings(copypasta_window_s=30), clock=clock)
    scheduler = ReplyScheduler(RecordingHandler(), SchedulerConfig(copypasta_users=2), clock=clock)
    scheduler.submit(counted(counter, line("same words", "ann", addressed=False)))
    await clock.advance(29)
    assert scheduler.submit(counted(counter, line("same words", "bob"))) is Outcome.COPYPASTA
    await clock.advance(31)
    assert scheduler.submit(counted(counter, line("same words", "cy"))) is Outcome.QUEUED


async def test_short_lines_that_differ_only_in_emoji_are_not_one_wave() -> None:
    # Letters and digits alone would make each of these "pip": three chatters, one "copypasta".
    counter = Moderator(ModerationSettings(), clock=ManualClock())
    scheduler = ReplyScheduler(RecordingHandler(), SchedulerConfig(copypasta_users=3), clock=ManualClock())
    outcomes = [
        scheduler.submit(counted(counter, line(f"Pip, {emoji}", f"user{i}"))) for i, emoji in enumerate("😂🎉👍")
    ]
    assert outcomes == [Outcome.QUEUED] * 3


async def test_one_count_feeds_moderations_copypasta_rule_and_the_schedulers_wave_rule() -> None:
    counter = Moderator(ModerationSettings(copypasta_count=3), clock=ManualClock())
    scheduler = ReplyScheduler(RecordingHandler(), SchedulerConfig(copypasta_users=3), clock=ManualClock())
    pasta = "pip is a bot and this is a copypasta LUL"
    heard = [counted(counter, line(pasta, f"user{i}")) for i in range(3)]
    verdicts = [counter.check_input(h.event, PersonaCard(name="Pip"), repeats=h.repeats) for h in heard]
    outcomes = [scheduler.submit(h) for h in heard]
    assert [h.repeats.copies for h in heard] == [1, 2, 3]  # each line counted once, when heard
    assert [v.action for v in verdicts] == [Action.ALLOW, Action.ALLOW, Action.DROP]
    assert outcomes == [Outcome.QUEUED, Outcome.QUEUED, Outcome.COPYPASTA]


# -- answering --------------------------------------------------------------------------------


async def test_addressed_lines_are_answered_before_others_and_newest_first() -> None:
    gate = asyncio.Event()
    handler = RecordingHandler(gate=gate)
    scheduler = ReplyScheduler(handler, SchedulerConfig(max_in_flight=1, answer_unaddressed=True), clock=ManualClock())
    blocker = line("first in", "zed")
    scheduler.submit(blocker)
    await scheduler.start()
    await settle()  # the blocker is now in flight, the rest queue behind it
    later = [
        line("lurking", "a", addressed=False),
        line("question?", "b", addressed=False),
        line("pip old", "c"),
        line("mod says", "d", addressed=False, roles=frozenset({Role.MODERATOR})),
        line("pip new", "e"),
    ]
    for event in later:
        scheduler.submit(event)
    gate.set()
    await asyncio.wait_for(scheduler.join(), 5)
    await scheduler.close()
    assert [e.text for e in handler.answered] == ["first in", "pip new", "pip old", "mod says", "question?", "lurking"]


async def test_generations_in_flight_are_bounded() -> None:
    gate = asyncio.Event()
    handler = RecordingHandler(gate=gate)
    scheduler = ReplyScheduler(handler, SchedulerConfig(max_in_flight=2), clock=ManualClock())
    await scheduler.start()
    for i in range(6):
        scheduler.submit(line(f"pip {i}", f"user{i}"))
    await settle()
    assert handler.running == 2
    gate.set()
    await asyncio.wait_for(scheduler.join(), 5)
    await scheduler.close()
    assert handler.most_running == 2
    assert scheduler.stats[Outcome.REPLIED] == 6


async def test_answered_chatter_waits_out_the_cooldown_without_being_dropped() -> None:
    clock = ManualClock()
    handler = RecordingHandler()
    scheduler = ReplyScheduler(handler, SchedulerConfig(user_cooldown_s=20, stale_after_s=60), clock=clock)
    await scheduler.start()
    scheduler.submit(line("pip one", "ann"))
    await settle()
    scheduler.submit(line("pip two", "ann"))
    scheduler.submit(line("pip hi", "bob"))
    await settle()
    assert [e.text for e in handler.answered] == ["pip one", "pip hi"]
    await clock.advance(20)
    await settle()
    assert [e.text for e in handler.answered] == ["pip one", "pip hi", "pip two"]
    await scheduler.close()


async def test_line_still_queued_after_the_staleness_limit_is_dropped() -> None:
    clock = ManualClock()
    outcomes: list[tuple[str, Outcome]] = []
    handler = RecordingHandler()
    scheduler = ReplyScheduler(
        handler,
        SchedulerConfig(user_cooldown_s=100, stale_after_s=30),
        clock=clock,
        on_outcome=lambda event, outcome: outcomes.append((event.text, outcome)),
    )
    await scheduler.start()
    scheduler.submit(line("pip one", "ann"))
    await settle()
    scheduler.submit(line("pip two", "ann"))  # ann is cooling down for 100 s; the line goes stale first
    await clock.advance(31)
    await settle()
    assert ("pip two", Outcome.STALE) in outcomes
    assert [e.text for e in handler.answered] == ["pip one"]
    await scheduler.close()


async def test_generation_waits_for_room_in_the_send_budget() -> None:
    clock = ManualClock()
    budget = SendBudget(2, clock=clock)
    handler = RecordingHandler()
    scheduler = ReplyScheduler(handler, SchedulerConfig(stale_after_s=600), clock=clock, budget_for=lambda e: budget)
    await scheduler.start()
    for i in range(4):
        scheduler.submit(line(f"pip {i}", f"user{i}"))
    await settle()
    assert len(handler.answered) == 2
    await clock.advance(30)
    await settle()
    assert len(handler.answered) == 4
    await scheduler.close()


async def test_nothing_sent_gives_the_budget_slot_back() -> None:
    clock = ManualClock()
    budget = SendBudget(1, clock=clock)
    handler = RecordingHandler(send=False)
    scheduler = ReplyScheduler(handler, clock=clock, budget_for=lambda e: budget)
    await scheduler.start()
    scheduler.submit(line("pip a", "ann"))
    scheduler.submit(line("pip b", "bob"))
    await asyncio.wait_for(scheduler.join(), 5)
    await scheduler.close()
    assert len(handler.answered) == 2
    assert scheduler.stats[Outcome.NOT_SENT] == 2
    assert budget.total_sent == 0


async def test_failing_handler_is_reported_and_the_slot_freed() -> None:
    budget = SendBudget(1, clock=ManualClock())

    async def broken(event: HeardLine, reservation: SendReservation | None) -> bool:
        raise RuntimeError("model fell over")

    scheduler = ReplyScheduler(broken, clock=budget.clock, budget_for=lambda e: budget)
    await scheduler.start()
    scheduler.submit(line("pip?", "ann"))
    await asyncio.wait_for(scheduler.join(), 5)
    await scheduler.close()
    assert scheduler.stats[Outcome.FAILED] == 1
    assert budget.in_window() == 0


async def test_full_queue_drops_the_least_urgent_line() -> None:
    config = SchedulerConfig(max_queued_per_channel=2, answer_unaddressed=True)
    scheduler = ReplyScheduler(RecordingHandler(), config, clock=ManualClock())
    assert scheduler.submit(line("lurk", "a", addressed=False)) is Outcome.QUEUED
    assert scheduler.submit(line("pip 1", "b")) is Outcome.QUEUED
    outcomes: list[Outcome] = []
    scheduler.on_outcome = lambda event, outcome: outcomes.append(outcome)
    assert scheduler.submit(line("pip 2", "c")) is Outcome.QUEUED
    assert outcomes[0] is Outcome.QUEUE_FULL  # "lurk" made room
    assert scheduler.submit(line("more lurking", "d", addressed=False)) is Outcome.QUEUE_FULL


async def test_a_full_queue_of_equals_drops_the_oldest_first() -> None:
    scheduler = ReplyScheduler(RecordingHandler(), SchedulerConfig(max_queued_per_channel=3), clock=ManualClock())
    dropped: list[str] = []
    scheduler.on_outcome = lambda event, outcome: dropped.append(event.text) if outcome is Outcome.QUEUE_FULL else None
    scheduler.submit(line("pip, a question?", "asker"))  # a higher class than the rest: kept
    for number in range(5):
        scheduler.submit(line(f"pip {number}", f"viewer{number}"))
    assert dropped == ["pip 0", "pip 1", "pip 2"]
    assert scheduler.queued == 3


async def test_a_long_flood_keeps_the_queue_heap_within_twice_the_live_lines() -> None:
    """500 addressed lines a second for 20 s, answered two at a time: most are evicted or go stale."""
    clock = ManualClock()

    async def slow_handler(heard: HeardLine, reservation: SendReservation | None) -> bool:
        await clock.sleep(2.0)
        return True

    scheduler = ReplyScheduler(slow_handler, SchedulerConfig(max_in_flight=2, stale_after_s=10), clock=clock)
    await scheduler.start()
    most_heap, most_ratio = 0, 0.0
    for step in range(200):
        for number in range(50):
            scheduler.submit(line(f"pip question {step}-{number}", f"viewer{(step * 50 + number) % 997}"))
        await clock.advance(0.1)
        footprint = scheduler.footprint()
        assert footprint.heap_entries <= 2 * footprint.live, footprint
        most_heap, most_ratio = max(most_heap, footprint.heap_entries), max(most_ratio, footprint.most_heap_per_live)
    assert (
        scheduler.stats[Outcome.QUEUE_FULL] > 0
        and scheduler.stats[Outcome.STALE] + scheduler.stats[Outcome.REPLIED] > 0
    )
    assert most_heap <= 2 * scheduler.config.max_queued_per_channel and most_ratio <= 2.0
    await scheduler.close()
    assert scheduler.footprint().heap_entries <= 2 * scheduler.footprint().live


async def test_draining_lets_answers_in_flight_finish_and_starts_nothing_new() -> None:
    gate = asyncio.Event()
    handler = RecordingHandler(gate=gate)
    outcomes: dict[str, Outcome] = {}
    scheduler = ReplyScheduler(
        handler,
        SchedulerConfig(max_in_flight=1, user_cooldown_s=0),
        clock=ManualClock(),
        on_outcome=lambda event, outcome: outcomes.__setitem__(event.text, outcome),
    )
    await scheduler.start()
    scheduler.submit(line("pip, in flight", "ann"))
    await settle()
    scheduler.submit(line("pip, still queued", "bob"))
    draining = asyncio.create_task(scheduler.drain(grace_s=5))
    await settle()
    assert scheduler.submit(line("pip, too late", "cy")) is Outcome.CLOSED
    gate.set()  # the answer in flight finishes within the grace period
    await asyncio.wait_for(draining, 5)
    await scheduler.close()
    assert outcomes["pip, in flight"] is Outcome.REPLIED
    assert outcomes["pip, still queued"] is Outcome.CLOSED, "nothing new starts once draining"
    assert [event.text for event in handler.answered] == ["pip, in flight"]


async def test_draining_gives_up_on_an_answer_that_outlasts_the_grace_period() -> None:
    handler = RecordingHandler(gate=asyncio.Event())  # never opens
    scheduler = ReplyScheduler(handler, clock=ManualClock())
    await scheduler.start()
    scheduler.submit(line("pip, stuck", "ann"))
    await settle()
    await asyncio.wait_for(scheduler.drain(grace_s=0.2), 5)
    await scheduler.close()
    assert scheduler.stats[Outcome.CLOSED] == 1 and handler.answered == []


# -- the host's own voice (engine.hearing) ------------------------------------------------------

HOST = frozenset({Role.HOST, Role.BROADCASTER})


async def test_the_hosts_spoken_line_goes_ahead_of_every_chat_line() -> None:
    gate = asyncio.Event()
    handler = RecordingHandler(gate=gate)
    scheduler = ReplyScheduler(handler, SchedulerConfig(max_in_flight=1), clock=ManualClock())
    scheduler.submit(line("first in", "zed"))
    await scheduler.start()
    await settle()
    scheduler.submit(line("pip question", "a"))
    scheduler.submit(line("Pip, what do you think?", "host", roles=HOST))
    # Newer lines, one from a moderator (the broadcaster's own rank): the host still goes first.
    scheduler.submit(line("pip mod", "b", roles=frozenset({Role.MODERATOR})))
    scheduler.submit(line("pip newest", "c"))
    gate.set()
    await asyncio.wait_for(scheduler.join(), 5)
    await scheduler.close()
    assert [e.text for e in handler.answered][:2] == ["first in", "Pip, what do you think?"]


async def test_the_host_saying_the_same_thing_twice_is_answered_twice_without_a_cooldown() -> None:
    handler = RecordingHandler()
    counter = Moderator(ModerationSettings(), clock=ManualClock())
    scheduler = ReplyScheduler(handler, SchedulerConfig(user_cooldown_s=60, copypasta_users=2), clock=ManualClock())
    await scheduler.start()
    outcomes = [scheduler.submit(counted(counter, line("Pip? Pip!", "host", roles=HOST))) for _ in range(3)]
    await asyncio.wait_for(scheduler.join(), 5)
    await scheduler.close()
    assert outcomes == [Outcome.QUEUED] * 3
    assert len(handler.answered) == 3
