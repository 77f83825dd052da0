"""Per-channel state stays bounded: a bot that sees ever more channels (Discord threads, DMs) keeps
only the most recently active ones' queues, cooldowns, windows and locks (engine.flow.recent)."""

from __future__ import annotations

import asyncio

import pytest

from bot.app import build_manager, close_manager
from engine.backends.scripted import ScriptedBackend
from engine.events import ChatEvent
from engine.flow.clock import ManualClock
from engine.flow.ratelimit import SendReservation
from engine.flow.recent import RecentlyUsed
from engine.flow.scheduler import ReplyScheduler, SchedulerConfig
from engine.heard import HeardLine

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
    assert footprint.channels <= KEPT and footprint.text_windows <= KEPT, footprint
