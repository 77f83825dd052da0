"""The console as the broadcaster's own channel: the channel's !commands, timers while live, and
stream events typed by hand (`/event raid 50 from SomeStreamer`) to see the card's reactions."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.app import build_manager, close_manager
from bot.console.adapter import ConsoleAdapter
from engine.backends.scripted import ScriptedBackend
from engine.base.clock import ManualClock
from engine.errors import SettingsError
from engine.prompting.tokens import ApproxTokenCounter
from engine.settings import Settings

pytestmark = pytest.mark.timeout(60)

CHANNEL_FILE = """
commands:
  - {name: socials, template: "Find us everywhere, {user}!", user_cooldown_s: 0, global_cooldown_s: 0}
timers:
  - {name: discord, template: "Join the Discord!", every_min: 1, min_lines: 2}
"""


class _Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


@pytest.fixture
def channel_settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    channel_file = tmp_path / "channel.yaml"
    channel_file.write_text(CHANNEL_FILE)
    return make_settings(stream={"commands_file": channel_file})


async def _session(
    settings: Settings, backend: ScriptedBackend, typed: str, *, live: bool = False, after_s: float = 0.0
) -> str:
    """A piped console session; then ``after_s`` seconds pass and the director's clock ticks."""
    manager = await build_manager(settings, backend=backend, counter=ApproxTokenCounter())
    clock = ManualClock(1000.0)
    out = _Pipe()
    try:
        console = ConsoleAdapter(settings, manager, stdin=_Pipe(typed), stdout=out, live=live, clock=clock)
        await console.director.tick()  # a timer's first period starts when the channel is first seen live
        await console.start()
        if after_s:
            await clock.advance(after_s)
            await console.director.tick()
            await console.director.join()
    finally:
        await close_manager(manager)
    return out.getvalue()


async def test_the_console_answers_the_cards_and_the_files_commands_without_asking_the_model(
    channel_settings: Settings,
) -> None:
    backend = ScriptedBackend(default="model words")
    output = await _session(channel_settings, backend, "!lurk\n!socials\n!commands\n")
    assert output.splitlines() == [
        "Pip: Enjoy the lurk, you! Pip will keep your seat warm.",
        "Pip: Find us everywhere, you!",
        "Pip: Commands: !lurk, !hype (moderator), !socials. Timers: secrets (every 20 min), discord (every 1 min).",
    ]
    assert backend.requests == []


async def test_a_live_console_says_its_timers_and_an_offline_one_does_not(channel_settings: Settings) -> None:
    chat = "hello pip\nhow are you?\n"
    live = await _session(channel_settings, ScriptedBackend(default="hi!"), chat, live=True, after_s=61)
    offline = await _session(channel_settings, ScriptedBackend(default="hi!"), chat, live=False, after_s=61)
    assert live.splitlines()[-1] == "Pip: Join the Discord!"
    assert "Join the Discord!" not in offline


async def test_a_typed_raid_gets_the_cards_reaction(settings: Settings) -> None:
    output = await _session(settings, ScriptedBackend(), "/event raid 50 from SomeStreamer\n")
    assert output.splitlines() == ["Pip: Welcome raiders from SomeStreamer! 50 of you!"]


async def test_a_typed_event_the_card_does_not_react_to_says_so(settings: Settings) -> None:
    output = await _session(settings, ScriptedBackend(), "/event offline\n/event party 3\n")
    lines = output.splitlines()
    assert lines[0].startswith("[no reaction to offline")
    assert lines[1].startswith("[usage: /event KIND") and "raid" in lines[1]


async def test_the_console_refuses_to_start_with_a_broken_commands_file(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(stream={"commands_file": tmp_path / "nonexistent.yaml"})
    manager = await build_manager(settings, backend=ScriptedBackend(), counter=ApproxTokenCounter())
    try:
        with pytest.raises(SettingsError, match=r"nonexistent\.yaml"):
            ConsoleAdapter(settings, manager, stdin=_Pipe(""), stdout=_Pipe())
    finally:
        await close_manager(manager)
