"""Per-channel state stays bounded: a bot that sees ever more channels (Discord threads, DMs) keeps
only the most recently active ones' queues, cooldowns, windows and locks (engine.base.recent)."""

from __future__ import annotations

import asyncio

import pytest

from bot.app import build_manager, close_manager
from engine.backends.scripted import ScriptedBackend
from engine.base.clock import ManualClock
from engine.base.recent import RecentlyUsed
from engine.events import ChatEvent
from engine.flow.ratelimit import SendReservation
from engine.flow.scheduler import ReplyScheduler, SchedulerConfig
from engine.heard import HeardLine
from engine.stream.director import StreamDirector
from engine.stream.outlet import Utterance

pytestmark = pytest.mark.timeout(120)

KEPT = 20
CHANNELS = 200


def test_the_least_recently_used_entries_go_first() -> None:
    table: RecentlyUsed[str, int] = RecentlyUsed(3)
    for key in "abc":
        table[key] = ord(key)
    assert table.get("a") == ord("a")  # "a" is now the most recent
    table["d"] = 4
    assert list(table) == ["c", "a", "d"]


def test_entries_in_use_are_kept_past_capacity_until_they_are_free() -> None:
    busy = {"a", "b"}
    table: RecentlyUsed[str, str] = RecentlyUsed(2, evictable=lambda key: key not in busy)
    for key in "abcd":
        table[key] = key
    assert {"a", "b"} <= set(table), "a busy entry is never dropped"
    busy.clear()
    table["e"] = "e"
    assert len(table) == 2 and "e" in table


async def test_the_manager_and_moderation_keep_only_the_recent_channels(make_settings, counter) -> None:
    settings = make_settings(core={"channels_kept": KEPT})
    manager = await build_manager(settings, backend=ScriptedBackend(default="hi!"), counter=counter)
    try:
        for number in range(CHANNELS):  # a DM each: every one a new channel
            event = ChatEvent(
                platform="discord",
                channel_id=f"dm{number}",
                author_id=f"viewer{number}",
                author_name=f"viewer{number}",
                text="pip, hello there, how is the stream going today?",
                message_id=f"m{number}",
                addresses_bot=True,
            )
            assert await manager.handle(event) is not None
        state = manager.channel_state()
    finally:
        await close_manager(manager)
    assert all(0 < count <= KEPT for count in state.values()), state


async def test_the_scheduler_forgets_idle_channels_but_never_queued_lines() -> None:
    clock = ManualClock()
    answered: list[str] = []

    async def handler(heard: HeardLine, reservation: SendReservation | None) -> bool:
        answered.append(heard.event.channel_id)
        return True

    scheduler = ReplyScheduler(handler, SchedulerConfig(channels_kept=KEPT), clock=clock)
    for number in range(CHANNELS):  # queued before the scheduler runs: every channel is busy
        event = ChatEvent(
            platform="discord",
            channel_id=f"thread{number}",
            author_id="ann",
            author_name="ann",
            text=f"pip, question {number}",
            message_id=f"q{number}",
            addresses_bot=True,
        )
        scheduler.submit(HeardLine(event))
    assert scheduler.footprint().channels == CHANNELS, "a channel with a queued line is never forgotten"
    await scheduler.start()
    await asyncio.wait_for(scheduler.join(), 10)
    assert len(answered) == CHANNELS
    for number in range(CHANNELS, CHANNELS + KEPT):  # new channels push the idle ones out
        event = ChatEvent(
            platform="discord",
            channel_id=f"thread{number}",
            author_id="bo",
            author_name="bo",
            text="hi",
            message_id=f"x{number}",
        )
        scheduler.submit(HeardLine(event))
    footprint = scheduler.footprint()
    await scheduler.close()
    assert footprint.channels <= KEPT, footprint


async def test_the_stream_director_keeps_only_the_recent_channels_and_every_live_one(make_settings, counter) -> None:
    settings = make_settings(stream={"proactive_silence_s": 120, "proactive_per_hour": 3, "proactive_busy_lines": 3})
    manager = await build_manager(settings, backend=ScriptedBackend(default="hi!"), counter=counter)
    clock = ManualClock(1000.0)

    async def speak(utterance: Utterance) -> str | None:
        return "sent"

    director = StreamDirector(manager, speak, settings=settings.stream, clock=clock, channels_kept=KEPT)
    most: dict[str, int] = {}
    try:
        director.set_live("twitch", "main", True)
        director.chat_heard(HeardLine(ChatEvent("twitch", "main", "ann", "ann", "hello chat", message_id="main-1")))
        for number in range(CHANNELS):  # a thread each, where the character spoke up once
            event = ChatEvent("discord", f"thread{number}", "bo", "bo", "anyone here?", message_id=f"t{number}")
            director.chat_heard(HeardLine(event))
            director.proactive.said(director.activity.state("discord", f"thread{number}"))
            await clock.advance(300.0)  # 12 channels an hour: older ones' hour is over
            for table, count in director.channel_state().items():
                most[table] = max(most.get(table, 0), count)
        main = director.activity.channels.peek("twitch:main")
    finally:
        await director.close()
        await close_manager(manager)
    assert all(count <= KEPT for count in most.values()), most
    assert most["stream_activity"] == KEPT and most["stream_proactive"] <= KEPT
    assert main is not None and main.live and main.lines == 1, "a live channel is never forgotten"
