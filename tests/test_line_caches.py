"""The per-line caches (moderation's text caches, the manager's "may the model see it" verdicts)
stop growing at their capacity, and that capacity is small enough that a busy stream fills them in
its first minutes: after that, memory stays flat (bench/long_stream.py measures it)."""

from __future__ import annotations

import pytest

from bot.app import build_manager, close_manager
from engine.backends.scripted import ScriptedBackend
from engine.events import ChatEvent
from engine.moderation.checks import slur_in
from engine.moderation.moderator import Moderator
from engine.prompting.tokens import ApproxTokenCounter
from personas.card import Lorebook, LoreEntry
from personas.lorebook import active_entries, folded_word_cache_fill

pytestmark = pytest.mark.timeout(300)

# A big stream says about 13 lines a second: 10,000 lines is under 15 minutes of chat.
A_FEW_MINUTES_OF_CHAT = 10_000


def distinct_line(number: int) -> str:
    return f"word{number} and zz{number}x said again"


def test_moderation_caches_hold_at_most_their_capacity_and_fill_within_minutes_of_chat() -> None:
    for number in range(A_FEW_MINUTES_OF_CHAT):
        slur_in(distinct_line(number))
    fill = Moderator.cache_fill()
    assert all(size == capacity > 0 for size, capacity in fill.values()), fill


async def test_the_verdicts_on_history_lines_stop_at_their_capacity(make_settings, counter) -> None:
    probe = await build_manager(make_settings(), backend=ScriptedBackend(default="hi!"), counter=counter)
    capacity = probe.cache_fill()["shown_verdicts"][1]
    await close_manager(probe)
    settings = make_settings(prompt={"history_lines": capacity + 500})
    manager = await build_manager(settings, backend=ScriptedBackend(default="hi!"), counter=counter)
    try:
        for number in range(capacity + 200):
            event = ChatEvent(
                platform="twitch",
                channel_id="stream",
                author_id=f"viewer{number % 50}",
                author_name=f"viewer{number % 50}",
                text=distinct_line(number),
                message_id=f"m{number}",
            )
            await manager.hear(event)
        asked = ChatEvent(
            platform="twitch",
            channel_id="stream",
            author_id="ann",
            author_name="ann",
            text="pip, what did everyone say?",
            message_id="asked",
            addresses_bot=True,
        )
        assert await manager.handle(asked) is not None
        size, kept = manager.cache_fill()["shown_verdicts"]
    finally:
        await close_manager(manager)
    assert size == kept == capacity, "every history line got a verdict, and only the newest are kept"


def test_the_lorebooks_folded_words_stop_at_their_capacity_within_minutes_of_chat() -> None:
    # Every line a reply scans adds its new words (names, typos): a 65,536-word cache filled for
    # hours of a long stream, and RSS grew with it (docs/safety.md, "Memory over a long stream").
    book = Lorebook(entries=[LoreEntry(keys=["boss fight"], content="The boss is a dragon.")], scan_depth=1)
    counter = ApproxTokenCounter()
    for number in range(A_FEW_MINUTES_OF_CHAT):
        active_entries(book, [distinct_line(number)], counter.count)
    size, capacity = folded_word_cache_fill()
    assert size == capacity > 0
