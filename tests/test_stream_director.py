"""The stream director on its own: reactions, custom commands, timers and proactive talk, on a
real manager (SQLite file, scripted model) with a clock that moves only when told."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.app import build_manager, close_manager
from engine.backends.scripted import ScriptedBackend
from engine.base.clock import ManualClock
from engine.events import ChatEvent, EventKind, Role, StreamEvent
from engine.flow.ratelimit import SendBudget
from engine.manager import ConversationManager
from engine.prompting.tokens import ApproxTokenCounter
from engine.settings import Settings
from engine.stream.director import StreamDirector
from engine.stream.outlet import Utterance
from tests.test_moderation import SLUR

pytestmark = pytest.mark.timeout(60)

CHANNEL = "chan"
_ids = itertools.count()

COMMANDS_FILE = """
commands:
  - {name: lurk, template: "Enjoy the lurk, {user}!", user_cooldown_s: 60, global_cooldown_s: 0}
  - {name: hype, template: "HYPE for {args}!", user_cooldown_s: 0, global_cooldown_s: 30}
  - {name: so, level: moderator, template: "Go follow {args}!", user_cooldown_s: 0, global_cooldown_s: 0}
  - {name: subonly, level: subscriber, template: "Subs rule.", user_cooldown_s: 0, global_cooldown_s: 0}
  - {name: ask, prompt: "Answer {user} in one line.", user_cooldown_s: 0, global_cooldown_s: 0}
timers:
  - {name: discord, template: "Join the Discord!", every_min: 10, min_lines: 5}
"""


class Said:
    """A speaker that records every utterance and says the platform took it."""

    def __init__(self) -> None:
        self.utterances: list[Utterance] = []

    async def __call__(self, utterance: Utterance) -> str | None:
        self.utterances.append(utterance)
        return f"sent-{len(self.utterances)}"

    @property
    def texts(self) -> list[str]:
        return [u.text for u in self.utterances]

    def kinds(self) -> list[str]:
        return [u.kind for u in self.utterances]


Directed = tuple[ConversationManager, StreamDirector, Said, ManualClock, ScriptedBackend]


@pytest.fixture
async def directed(make_settings: Callable[..., Settings], tmp_path: Path) -> AsyncIterator[Directed]:
    commands = tmp_path / "channel.yaml"
    commands.write_text(COMMANDS_FILE)
    settings = make_settings(
        stream={
            "commands_file": commands,
            "proactive_silence_s": 120,
            "proactive_per_hour": 3,
            "proactive_busy_lines": 3,
        }
    )
    backend = ScriptedBackend(default="Who here has found a secret level today?")
    manager = await build_manager(settings, backend=backend, counter=ApproxTokenCounter())
    clock = ManualClock(1000.0)
    said = Said()
    director = StreamDirector(manager, said, settings=settings.stream, clock=clock)
    yield manager, director, said, clock, backend
    await director.close()
    await close_manager(manager)


def chat(text: str, author: str = "viewer", roles: frozenset[Role] = frozenset()) -> ChatEvent:
    return ChatEvent("twitch", CHANNEL, author, author.title(), text, message_id=f"m{next(_ids)}", roles=roles)


def stream_event(kind: EventKind, user: str = "BigStreamer", amount: int = 0, **fields: str) -> StreamEvent:
    return StreamEvent("twitch", CHANNEL, kind, f"e{next(_ids)}", user.lower(), user, amount=amount, **fields)  # type: ignore[arg-type]


async def hear_chat(directed: Directed, event: ChatEvent) -> bool:
    manager, director, *_ = directed
    heard = await manager.hear(event)
    director.chat_heard(heard)
    return await director.command(heard)


async def hear_event(directed: Directed, event: StreamEvent) -> None:
    manager, director, *_ = directed
    await director.take(await manager.hear(event))
    await director.join()


async def go_live(directed: Directed) -> None:
    await hear_event(directed, stream_event(EventKind.ONLINE, "Streamer"))


# -- reactions ----------------------------------------------------------------------------------


async def test_a_second_raid_within_the_cooldown_is_stored_but_not_thanked(directed: Directed) -> None:
    manager, _, said, clock, _ = directed
    card = manager.personas.get("pip")
    assert card is not None
    card.reactions.raid.cooldown_s = 60  # type: ignore[union-attr]
    await hear_event(directed, stream_event(EventKind.RAID, "Ann", 10))
    await hear_event(directed, stream_event(EventKind.RAID, "Bo", 20))
    await clock.advance(61)
    await hear_event(directed, stream_event(EventKind.RAID, "Cy", 30))
    assert said.texts == ["Welcome raiders from Ann! 10 of you!", "Welcome raiders from Cy! 30 of you!"]
    assert await manager.memory.count_messages("twitch", CHANNEL) == 3 + 2  # three raids, two thank-yous


async def test_a_prompted_reaction_never_shows_the_model_a_forbidden_name_and_its_output_is_moderated(
    directed: Directed,
) -> None:
    manager, _, said, _, backend = directed
    card = manager.personas.get("pip")
    assert card is not None
    card.reactions.raid = type(card.reactions.raid).model_validate(  # type: ignore[union-attr]
        {"prompt": "Welcome the {viewers} raiders from {from_channel} in one excited line."}
    )
    backend.enqueue(["Welcome raiders! Grab free subs at evil.example.com now"])
    await hear_event(directed, stream_event(EventKind.RAID, f"{SLUR}Lord", 50))
    prompt = " ".join(message.content for message in backend.requests[-1].messages)
    assert SLUR not in prompt.lower()
    assert "50 raiders from the raiding channel" in prompt  # the instruction names it, never fills it
    assert 'the raiding channel: "a fellow streamer"' in prompt  # its words, judged, quoted in the user turn
    assert said.kinds() == ["raid"] and "evil.example.com" not in said.texts[0]


async def test_a_gift_bomb_is_thanked_once_for_all_its_gifts(directed: Directed) -> None:
    *_, said, _, _ = directed
    await hear_event(directed, stream_event(EventKind.GIFT_BOMB, "Generous", 5))
    for n in range(5):
        await hear_event(directed, stream_event(EventKind.GIFT, "Generous", 1, recipient=f"Lucky{n}", group_id="g1"))
    await hear_event(directed, stream_event(EventKind.GIFT, "Solo", 1, recipient="Friend"))  # not part of a bomb
    assert said.texts == ["Generous just gifted 5 subs! Thank you!", "Thank you for the gift sub, Solo!"]


async def test_follows_in_one_window_get_one_welcome_naming_a_few(directed: Directed) -> None:
    _, director, said, clock, _ = directed
    for n in range(10):
        await hear_event(directed, stream_event(EventKind.FOLLOW, f"Newbie{n}"))
    await director.tick()
    assert said.texts == []  # the window is still open
    await clock.advance(director.settings.follow_window_s)
    await director.tick()
    await director.join()
    assert said.texts == ["Welcome to the crew, Newbie0, Newbie1, Newbie2 and 7 others!"]


async def test_a_redemption_bound_to_an_answer_is_answered_by_the_model_with_priority(directed: Directed) -> None:
    manager, _, said, _, backend = directed
    card = manager.personas.get("pip")
    assert card is not None
    card.reactions.answer_rewards = ["Ask Pip a question"]
    backend.enqueue(["My favourite colour is pixel green!"])
    await hear_event(
        directed,
        stream_event(
            EventKind.REDEMPTION, "Viewer", text="what is your favourite colour?", reward="Ask Pip a question"
        ),
    )
    assert said.texts == ["My favourite colour is pixel green!"]
    assert said.utterances[0].urgent and said.utterances[0].kind == "redemption_answer"
    assert "what is your favourite colour?" in backend.requests[-1].messages[-2].content


# -- custom commands ----------------------------------------------------------------------------


async def test_a_viewer_cannot_trigger_a_moderator_command_and_a_moderator_can(directed: Directed) -> None:
    *_, said, _, _ = directed
    assert await hear_chat(directed, chat("!so coolstreamer"))  # ours, swallowed
    assert await hear_chat(directed, chat("!subonly"))
    await directed[1].join()
    assert said.texts == []
    assert await hear_chat(directed, chat("!so coolstreamer", "mod", frozenset({Role.MODERATOR})))
    assert await hear_chat(directed, chat("!subonly", "vip", frozenset({Role.VIP})))
    await directed[1].join()
    assert said.texts == ["Go follow coolstreamer!", "Subs rule."]
    assert said.utterances[0].reply_to is not None and not said.utterances[0].urgent


async def test_per_user_and_global_command_cooldowns(directed: Directed) -> None:
    _, director, said, clock, _ = directed
    for author in ("ann", "ann", "bo"):  # !lurk: 60 s per user, no global cooldown
        await hear_chat(directed, chat("!lurk", author))
    for author in ("ann", "bo"):  # !hype: 30 s for everyone
        await hear_chat(directed, chat("!hype pip", author))
    await director.join()
    assert said.texts == ["Enjoy the lurk, Ann!", "Enjoy the lurk, Bo!", "HYPE for pip!"]
    await clock.advance(61)
    await hear_chat(directed, chat("!lurk", "ann"))
    await hear_chat(directed, chat("!hype again", "bo"))
    await director.join()
    assert said.texts[3:] == ["Enjoy the lurk, Ann!", "HYPE for again!"]


async def test_moderators_can_list_the_commands_and_viewers_cannot(directed: Directed) -> None:
    _, director, said, _, _ = directed
    assert await hear_chat(directed, chat("!commands"))
    await director.join()
    assert said.texts == []
    await hear_chat(directed, chat("!commands", "mod", frozenset({Role.MODERATOR})))
    await director.join()
    assert said.texts[0].startswith("Commands: !lurk, !hype, !so (moderator), !subonly (subscriber), !ask")
    assert "discord (every 10 min)" in said.texts[0]


async def test_a_command_output_with_a_slur_in_its_arguments_is_not_said(directed: Directed) -> None:
    _, director, said, _, _ = directed
    await hear_chat(directed, chat(f"!so {SLUR}", "mod", frozenset({Role.MODERATOR})))
    await director.join()
    assert said.texts == []


async def test_unknown_commands_and_plain_lines_are_not_ours(directed: Directed) -> None:
    assert not await hear_chat(directed, chat("!nosuchthing"))
    assert not await hear_chat(directed, chat("hello there"))


# -- timers -------------------------------------------------------------------------------------


async def test_a_timer_does_not_fire_into_an_empty_chat(directed: Directed) -> None:
    _, director, said, clock, _ = directed
    await go_live(directed)
    await director.tick()  # the timer's first period starts
    await clock.advance(11 * 60)
    await director.tick()
    await director.join()
    assert "timer" not in said.kinds()
    for n in range(5):
        await hear_chat(directed, chat(f"line {n}", f"viewer{n}"))
    await director.tick()
    await director.join()
    assert said.texts.count("Join the Discord!") == 1


async def test_a_timer_stays_quiet_while_the_stream_is_offline(directed: Directed) -> None:
    _, director, said, clock, _ = directed
    await hear_chat(directed, chat("first!"))
    await director.tick()
    for n in range(20):
        await hear_chat(directed, chat(f"line {n}", f"viewer{n}"))
    await clock.advance(30 * 60)
    await director.tick()
    await director.join()
    assert said.texts == []


# -- proactive talk -----------------------------------------------------------------------------


async def test_no_proactive_talk_while_the_stream_is_offline(directed: Directed) -> None:
    _, director, said, clock, _ = directed
    await hear_chat(directed, chat("anyone here?"))
    for _ in range(10):
        await clock.advance(300)
        await director.tick()
    await director.join()
    assert "proactive" not in said.kinds()


async def test_no_proactive_talk_while_chat_is_busy(directed: Directed) -> None:
    _, director, said, clock, _ = directed
    await go_live(directed)
    for n in range(120):  # a line every 5 s for 10 minutes: never 120 s of silence
        await hear_chat(directed, chat(f"gg {n}", f"viewer{n % 7}"))
        await clock.advance(5)
        await director.tick()
    await director.join()
    assert "proactive" not in said.kinds()


async def test_a_burst_of_chat_a_moment_ago_still_counts_as_busy(
    make_settings: Callable[..., Settings], directed: Directed
) -> None:
    manager, _, _, clock, _ = directed
    settings = make_settings(stream={"proactive_silence_s": 30, "proactive_per_hour": 10, "proactive_busy_lines": 3})
    said = Said()
    director = StreamDirector(manager, said, settings=settings.stream, clock=clock)
    director.set_live("twitch", CHANNEL, True)
    for n in range(5):
        director.chat_heard(await manager.hear(chat(f"pog {n}", f"viewer{n}")))
    await clock.advance(40)  # 40 s of silence, but five lines within the last minute
    await director.tick()
    await director.join()
    assert said.texts == []
    await clock.advance(30)
    await director.tick()
    await director.join()
    assert said.kinds() == ["proactive"]
    await director.close()


async def test_a_quiet_live_channel_hears_at_most_n_proactive_lines_an_hour(directed: Directed) -> None:
    manager, director, said, clock, backend = directed
    await go_live(directed)
    for _ in range(2 * 60):  # two hours in one-minute ticks, nobody chatting
        await clock.advance(60)
        await director.tick()
        await director.join()
    spoken = said.kinds().count("proactive")
    assert spoken == 2 * 3  # three an hour, the limit
    assert "Who here has found a secret level today?" in said.texts
    card = manager.personas.get("pip")
    assert card is not None and backend.requests[-1].messages[-1].content == card.reactions.proactive
    assert manager.metrics.stream_reactions.labels("twitch", "proactive")._value.get() == spoken


# -- the send budget ------------------------------------------------------------------------------


class SteppingClock(ManualClock):
    def jump(self, seconds: float) -> None:
        """Time passes, but nobody waiting on the clock has woken yet (the race a real clock has)."""
        self._now += seconds


async def test_a_reaction_waiting_for_the_send_budget_goes_before_ordinary_replies() -> None:
    clock = SteppingClock()
    budget = SendBudget(1, clock=clock)
    reply = budget.reserve()
    assert reply is not None
    reply.sent()
    urgent = asyncio.create_task(budget.reserve_urgent(max_wait_s=60))
    await clock.advance(1)
    assert not urgent.done()
    clock.jump(30)  # the slot is free, the waiting reaction not yet awake
    assert budget.reserve() is None  # the next reply does not take the reaction's slot
    assert budget.wait_time() > 0  # and the scheduler does not spin on it
    await clock.advance(0.01)
    reaction = await urgent
    assert reaction is not None


async def test_more_reactions_than_the_limit_each_get_their_turn_instead_of_waiting_on_each_other() -> None:
    clock = ManualClock()
    budget = SendBudget(1, window_s=1.0, clock=clock)
    waiting = [asyncio.create_task(budget.reserve_urgent(max_wait_s=60)) for _ in range(3)]
    for _ in range(5):
        await clock.advance(1.01)
        for task in waiting:
            if task.done() and task.result() is not None:
                task.result().sent()  # type: ignore[union-attr]
    assert all(task.done() and task.result() is not None for task in waiting), "none starved past its wait"


async def test_a_reaction_gives_up_when_the_budget_stays_full_past_its_wait() -> None:
    clock = ManualClock()
    budget = SendBudget(1, clock=clock)
    held = budget.reserve()
    assert held is not None
    held.sent()
    assert await budget.reserve_urgent(max_wait_s=5) is None


async def test_a_raid_is_remembered_and_recalled_when_the_raider_brings_it_up_later(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(prompt={"history_lines": 4})
    backend = ScriptedBackend(default="Of course I remember!")
    manager = await build_manager(settings, backend=backend, counter=ApproxTokenCounter())
    try:
        await manager.hear(stream_event(EventKind.RAID, "BigStreamer", 120))
        for n in range(12):  # the raid leaves the prompt's history window
            await manager.hear(chat(f"what a game, round {n}", f"viewer{n}"))
        asked = await manager.hear(
            ChatEvent(
                "twitch", CHANNEL, "bigstreamer", "BigStreamer", "Pip, remember when I raided you?", addresses_bot=True
            )
        )
        await manager.reply(asked)
    finally:
        await close_manager(manager)
    prompt = " ".join(message.content for message in backend.requests[-1].messages)
    assert "raided the channel with 120 viewers" in prompt
