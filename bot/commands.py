"""The one command system: viewer and moderator commands, each defined once, rendered per platform.

The commands: ``persona [NAME]``, ``personas``, ``about``, ``unnote N``, ``forgetme`` (``forget``),
``scene NAME`` (with OBS control) and ``costar mute|unmute`` (the dashboard's mute button).

A :class:`Command` is discord.py's ``ext.commands`` idea: a name, who may run it (a user level), help,
and one handler. :data:`COMMANDS` lists them all. :class:`PlatformCommands` renders the set for one
platform: the prefix chat types (``!`` on Twitch and YouTube, ``/`` in the console), and which commands
exist there — one whose answer is private to the asker (``about``, ``unnote``) only where answers can
be private (the console, Discord's ephemeral slash replies), never in a public stream chat. Discord
renders the same commands as slash commands (:mod:`bot.discord.commands`), answered through
:meth:`PlatformCommands.invoke`. Every command runs through :meth:`PlatformCommands.invoke`, the one
dispatch: the level check, the cooldown and the handler.

Commands are answered directly, never queued behind the flood, but each has a cooldown so a room full
of people typing ``!persona`` costs one message, not fifty. A command on cooldown, or one asked for by
someone below its level, is swallowed silently: answering it would spend the send budget on exactly
the spam the cooldown is there to stop.

``!forgetme`` is the exception: it is never swallowed. Anyone may send it and each one holds the
database's write lock for a while (about a second on a million stored lines), so a channel runs at most
``forgets_per_minute`` of them a minute (TWITCH_FORGETS_PER_MINUTE on Twitch, 6 elsewhere); the rest
wait their turn in order, and a viewer who asks again while their forget waits is covered by the one
already waiting. The cooldown only decides whether the
confirmation is said.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from bot.obs_control import ObsUnavailable
from engine.base.clock import Clock
from engine.base.cooldown import Cooldown
from engine.base.recent import RecentlyUsed
from engine.errors import PersonaNotFound
from engine.events import ChatEvent
from engine.flow.ratelimit import SendBudget
from engine.stream.commands import has_level
from personas.stream import UserLevel

__all__ = [
    "COMMANDS",
    "Command",
    "CommandResult",
    "PersonaManager",
    "PlatformCommands",
    "SceneSwitcher",
]

logger = logging.getLogger(__name__)

FORGET_WINDOW_S = 60.0


class PersonaManager(Protocol):
    """The part of ConversationManager the commands use."""

    async def persona_for(self, platform: str, channel_id: str, server_id: str | None = None) -> object: ...

    async def switch_persona(
        self, platform: str, scope_id: str, name: str, *, scope: str = "channel", set_by: str | None = None
    ) -> object: ...

    async def forget(self, platform: str, user_id: str) -> object: ...

    async def about(
        self, platform: str, user_id: str, *, moderator_in: tuple[str, str | None] | None = None
    ) -> object: ...

    async def delete_note(
        self, platform: str, note_id: int, *, moderator_in: tuple[str, str | None] | None = None
    ) -> bool: ...

    async def mute(self, scope: str, muted: bool = True) -> None: ...


class SceneSwitcher(Protocol):
    """What ``!scene`` needs (bot.obs_control.ObsControl): OBS's spelling of the scene it switched to."""

    async def switch_scene(self, name: str) -> str: ...


@dataclass(frozen=True, slots=True)
class CommandResult:
    reply: str | None = None
    persona_changed: bool = False
    forgot: bool = False  # the asker was forgotten: their lines still queued must go too


Handler = Callable[["PlatformCommands", ChatEvent, str], Awaitable[CommandResult]]


@dataclass(frozen=True, slots=True)
class Command:
    """One command. ``level``: who may run it; ``argument_level``: who may run it with an argument
    (``persona NAME`` switches). ``private``: its answer is for the asker only."""

    name: str
    help: str
    run: Handler
    level: UserLevel = "everyone"
    argument_level: UserLevel | None = None
    argument: str = ""
    private: bool = False
    aliases: tuple[str, ...] = ()
    needs_scenes: bool = False

    def usage(self, prefix: str) -> str:
        return f"{prefix}{self.name}" + (f" [{self.argument}]" if self.argument else "")


# -- the handlers ---------------------------------------------------------------------------------


async def _persona(commands: PlatformCommands, event: ChatEvent, wanted: str) -> CommandResult:
    manager = commands.manager
    if wanted:
        if commands.cooling(event.channel_key, "switch", event.author_id):
            return CommandResult()
        try:
            # The id, not the display name: a name is what a viewer chose, and forget clears ids.
            card = await manager.switch_persona(event.platform, event.channel_id, wanted, set_by=event.author_id)
        except PersonaNotFound as exc:
            return CommandResult(reply=f"@{event.author_name} {exc}")
        return CommandResult(reply=f"Now playing {_name(card)}.", persona_changed=True)
    if commands.cooling(event.channel_key, "show"):
        return CommandResult()
    card = await manager.persona_for(event.platform, event.channel_id, event.server_id)
    return CommandResult(reply=f"Current persona: {_name(card)}.")


async def _personas(commands: PlatformCommands, event: ChatEvent, _: str) -> CommandResult:
    if commands.cooling(event.channel_key, "personas"):
        return CommandResult()
    registry = getattr(commands.manager, "personas", None)  # the manager's PersonaRegistry
    names: list[str] = list(registry.names()) if registry is not None else []
    return CommandResult(reply="Installed: " + (", ".join(names) or "none") + ".")


async def _about(commands: PlatformCommands, event: ChatEvent, _: str) -> CommandResult:
    about = await commands.manager.about(event.platform, event.author_id)
    record = getattr(about, "record", None)
    count = record.message_count if record is not None else 0
    notes = "; ".join(f"#{note.id} {note.text}" for note in getattr(about, "notes", [])) or "none"
    return CommandResult(reply=f"{event.author_name}: {count} messages remembered; notes: {notes}")


async def _unnote(commands: PlatformCommands, event: ChatEvent, number: str) -> CommandResult:
    if not number.lstrip("#").isdigit():
        return CommandResult(reply="Which note? Give its number, as about shows it.")
    note = int(number.lstrip("#"))
    # A moderator deletes only what was said within the place they moderate.
    deleted = await commands.manager.delete_note(event.platform, note, moderator_in=(event.channel_id, event.server_id))
    return CommandResult(reply=f"Deleted note #{note}." if deleted else f"There is no note #{note}.")


async def _forget(commands: PlatformCommands, event: ChatEvent, _: str) -> CommandResult:
    asked = (event.channel_key, event.author_id)
    if asked in commands.forgets_waiting:
        return CommandResult()  # the forget already waiting runs later and covers this line too
    budget = commands.forget_budget(event.channel_key)
    commands.forgets_waiting.add(asked)
    try:
        turn = await budget.acquire()  # every waiting forget runs, in about the order asked
    finally:
        # From here a new request is a new forget: lines stored meanwhile may escape this one.
        commands.forgets_waiting.discard(asked)
    try:
        result = await commands.manager.forget(event.platform, event.author_id)
    finally:
        turn.sent()
    logger.info("forgot %s on %s at their request", event.author_id, event.platform)
    if commands.cooling(event.channel_key, "forget", event.author_id):
        return CommandResult(forgot=True)  # forgotten all the same: only the answer is skipped
    counts = f"forgot {getattr(result, 'messages', 0)} messages and {getattr(result, 'notes', 0)} notes"
    return CommandResult(
        reply=f"@{event.author_name} done: {counts}; I no longer remember anything you said.", forgot=True
    )


async def _scene(commands: PlatformCommands, event: ChatEvent, wanted: str) -> CommandResult:
    if commands.scenes is None or not wanted or commands.cooling(event.channel_key, "scene", event.author_id):
        return CommandResult()
    try:
        switched = await commands.scenes.switch_scene(wanted)
    except ObsUnavailable as exc:
        logger.warning("!scene %s: %s", wanted, exc)
        return CommandResult(reply=f"@{event.author_name} {exc}")
    return CommandResult(reply=f"Scene: {switched}.")


async def _mute(commands: PlatformCommands, event: ChatEvent, action: str) -> CommandResult:
    """The dashboard's mute button for this channel: no cooldown, a panic button must always work."""
    action = action.casefold()
    if action not in ("mute", "unmute"):
        return CommandResult()
    await commands.manager.mute(event.channel_key, action == "mute")
    # Muted: nothing may be said, this answer included (the dashboard shows the mute in red).
    return CommandResult(reply="Unmuted: talking again." if action == "unmute" else None)


COMMANDS: tuple[Command, ...] = (
    Command(
        "persona",
        "show the character, or switch it (moderators)",
        _persona,
        argument="NAME",
        argument_level="moderator",
    ),
    Command("personas", "the installed personas", _personas),
    Command("about", "what the character remembers about you", _about, private=True),
    Command(
        "unnote", "delete one remembered note (moderators)", _unnote, level="moderator", argument="N", private=True
    ),
    Command("forgetme", "delete everything the character stored about you", _forget, aliases=("forget",)),
    Command(
        "scene", "switch the OBS scene (moderators)", _scene, level="moderator", argument="NAME", needs_scenes=True
    ),
    Command("costar", "mute or unmute the co-host here (moderators)", _mute, level="moderator", argument="mute|unmute"),
)


class PlatformCommands:
    """:data:`COMMANDS` as one platform renders them: its prefix, the ones it offers, one dispatch."""

    def __init__(
        self,
        manager: PersonaManager,
        *,
        clock: Clock,
        cooldown_s: float,
        forgets_per_minute: int = 6,
        prefix: str = "!",
        private_answers: bool = False,
        scenes: SceneSwitcher | None = None,
        commands: tuple[Command, ...] = COMMANDS,
    ) -> None:
        self.manager = manager
        self.scenes = scenes
        self.clock = clock
        self.prefix = prefix
        self.forgets_per_minute = forgets_per_minute
        self.offered = tuple(
            command
            for command in commands
            if (private_answers or not command.private) and (scenes is not None or not command.needs_scenes)
        )
        self._by_name = {name: command for command in self.offered for name in (command.name, *command.aliases)}
        self._cooldown: Cooldown[tuple[str, ...]] = Cooldown(cooldown_s, clock=clock)
        # Per channel, the most recently active only (engine.base.recent); one still counting stays.
        self._forget_budgets: RecentlyUsed[str, SendBudget] = RecentlyUsed(
            evictable=lambda budget: not budget.in_window()
        )
        self.forgets_waiting: set[tuple[str, str]] = set()  # (channel, viewer) asked, not yet run

    def parse(self, text: str) -> tuple[Command, str] | None:
        """The command ``text`` types in this platform's chat, with its argument; None if it is none."""
        stripped = text.strip()
        if not stripped.startswith(self.prefix):
            return None
        head, _, rest = stripped[len(self.prefix) :].partition(" ")
        command = self._by_name.get(head.casefold())
        return (command, rest.strip()) if command is not None else None

    def is_command(self, event: ChatEvent) -> bool:
        return self.parse(event.text) is not None

    async def handle(self, event: ChatEvent) -> CommandResult | None:
        """Run the command typed in ``event``; None when the line is not one of ours."""
        parsed = self.parse(event.text)
        if parsed is None:
            return None
        return await self.invoke(parsed[0].name, event, parsed[1])

    async def invoke(self, name: str, event: ChatEvent, argument: str = "") -> CommandResult:
        """The one dispatch: level check, then the handler (which applies the cooldowns)."""
        command = self._by_name[name]
        level = command.argument_level if argument and command.argument_level else command.level
        if not has_level(event, level):
            return CommandResult()  # swallowed: answering would spend the budget on the spam
        return await command.run(self, event, argument)

    def help(self) -> str:
        return " · ".join(command.usage(self.prefix) for command in self.offered)

    def cooling(self, *key: str) -> bool:
        """True when ``key`` was used within the cooldown; otherwise marks it used now."""
        return not self._cooldown.try_use(key)

    def forget_budget(self, channel_key: str) -> SendBudget:
        budget = self._forget_budgets.get(channel_key)
        if budget is None:
            budget = self._forget_budgets[channel_key] = SendBudget(
                self.forgets_per_minute, FORGET_WINDOW_S, clock=self.clock
            )
        return budget


def _name(card: object) -> str:
    return str(getattr(card, "name", card))
