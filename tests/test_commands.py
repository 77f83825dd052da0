"""The one command system (bot.commands): each command defined once, with a user level, rendered per
platform (``!`` in stream chat, ``/`` in the console, private ones only where answers are private)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from bot.app import build_manager, close_manager
from bot.commands import COMMANDS, PlatformCommands
from engine.backends.scripted import ScriptedBackend
from engine.base.clock import ManualClock
from engine.events import ChatEvent, Role
from engine.manager import ConversationManager


def line(text: str, *, roles: frozenset[Role] = frozenset(), author: str = "v1") -> ChatEvent:
    return ChatEvent(platform="twitch", channel_id="c", author_id=author, author_name=author, text=text, roles=roles)


@pytest_asyncio.fixture
async def manager(settings, counter) -> AsyncIterator[ConversationManager]:
    built = await build_manager(settings, backend=ScriptedBackend(), counter=counter)
    try:
        yield built
    finally:
        await close_manager(built)


def test_every_command_is_defined_once() -> None:
    spellings = [name for command in COMMANDS for name in (command.name, *command.aliases)]
    assert len(spellings) == len(set(spellings))


async def test_stream_chat_types_bang_and_the_console_types_slash(manager: ConversationManager) -> None:
    chat = PlatformCommands(manager, clock=ManualClock(), cooldown_s=0)
    console = PlatformCommands(manager, clock=ManualClock(), cooldown_s=0, prefix="/", private_answers=True)
    assert chat.is_command(line("!persona")) and not chat.is_command(line("/persona"))
    assert console.is_command(line("/persona")) and not console.is_command(line("!persona"))
    typed_in_console = await console.handle(line("/forget"))
    typed_in_chat = await chat.handle(line("!forgetme", author="v2"))
    assert typed_in_console is not None and typed_in_console.forgot
    assert typed_in_chat is not None and typed_in_chat.forgot, "the same command, spelt per platform"


async def test_a_private_answer_is_never_offered_in_a_public_stream_chat(manager: ConversationManager) -> None:
    chat = PlatformCommands(manager, clock=ManualClock(), cooldown_s=0)
    assert await chat.handle(line("!about")) is None, "what is remembered about a viewer is not read out on stream"
    assert "!about" not in chat.help() and "!forgetme" in chat.help()


async def test_a_viewer_below_a_commands_level_is_swallowed(manager: ConversationManager) -> None:
    console = PlatformCommands(manager, clock=ManualClock(), cooldown_s=0, prefix="/", private_answers=True)
    await manager.hear(line("hello"))
    await manager.memory.add_note("twitch", "v1", "likes tea")
    [note] = (await manager.about("twitch", "v1")).notes
    refused = await console.handle(line(f"/unnote {note.id}"))
    assert refused is not None and refused.reply is None
    assert (await manager.about("twitch", "v1")).notes == [note], "the note is still there"
    switched = await console.handle(line("/persona captain-brine"))
    assert switched is not None and not switched.persona_changed, "a viewer cannot switch the persona"


async def test_a_moderator_may_run_a_moderator_command(manager: ConversationManager) -> None:
    chat = PlatformCommands(manager, clock=ManualClock(), cooldown_s=0)
    result = await chat.handle(line("!persona captain-brine", roles=frozenset({Role.MODERATOR})))
    assert result is not None and result.persona_changed
