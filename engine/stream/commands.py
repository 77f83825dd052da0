"""The channel's own ``!commands``: who may use each (user level) and how often (per-user and
global cooldowns, through the one cooldown helper).

A command someone may not use, or one cooling down, is swallowed silently, as Nightbot does:
answering it would spend the send budget on exactly the spam the rule is there to stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.base.clock import Clock
from engine.base.cooldown import Cooldown
from engine.errors import SettingsError
from engine.events import MODERATING_ROLES, ChatEvent, Role
from personas.stream import CustomCommand, StreamTimer, UserLevel
from personas.validation import field_path

__all__ = ["LIST_COMMAND", "ChannelFile", "CommandCall", "CustomCommands", "has_level", "load_channel_file"]

LIST_COMMAND = "commands"  # moderators list the channel's commands and timers in chat
PREFIX = "!"

_LEVELS: dict[UserLevel, frozenset[Role]] = {
    "broadcaster": frozenset({Role.BROADCASTER}),
    "moderator": MODERATING_ROLES,
    "vip": MODERATING_ROLES | {Role.VIP},
    "subscriber": MODERATING_ROLES | {Role.VIP, Role.SUBSCRIBER},
}


def has_level(event: ChatEvent, level: UserLevel) -> bool:
    return level == "everyone" or bool(event.roles & _LEVELS[level])


class ChannelFile(BaseModel):
    """COSTAR_STREAM_COMMANDS_FILE: commands and timers on top of the card's (same name wins)."""

    model_config = ConfigDict(extra="forbid")

    commands: list[CustomCommand] = Field(default_factory=list)
    timers: list[StreamTimer] = Field(default_factory=list)


def load_channel_file(path: Path | None) -> ChannelFile:
    """The file's commands and timers; a SettingsError naming every problem in it at once."""
    if path is None:
        return ChannelFile()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise SettingsError(f"COSTAR_STREAM_COMMANDS_FILE: cannot read {path} ({reason})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SettingsError(f"COSTAR_STREAM_COMMANDS_FILE {path}: invalid YAML{where}: {exc}") from exc
    try:
        return ChannelFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{field_path(problem['loc']) or '(top level)'}: {problem['msg']}" for problem in exc.errors()
        )
        raise SettingsError(f"COSTAR_STREAM_COMMANDS_FILE {path}: {problems}") from exc


@dataclass(frozen=True, slots=True)
class CommandCall:
    command: CustomCommand | None  # None: the moderators' !commands listing
    args: str


def parse(text: str) -> tuple[str, str] | None:
    stripped = text.strip()
    if not stripped.startswith(PREFIX) or len(stripped) == 1:
        return None
    head, _, rest = stripped[len(PREFIX) :].partition(" ")
    return head.casefold(), rest.strip()


class CustomCommands:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._cooldowns: dict[float, Cooldown[tuple[str, ...]]] = {}

    def match(self, event: ChatEvent, commands: list[CustomCommand]) -> tuple[bool, CommandCall | None]:
        """(is it one of ours, the call to run now). A call is None when the line is ours but may
        not run now: the asker lacks the level, or the command is cooling down."""
        parsed = parse(event.text)
        if parsed is None:
            return False, None
        name, args = parsed
        if name == LIST_COMMAND and not any(command.name == name for command in commands):
            allowed = event.is_moderator and self._use(event, LIST_COMMAND, user_s=0.0, global_s=30.0)
            return True, CommandCall(None, "") if allowed else None
        command = next((command for command in commands if command.name == name), None)
        if command is None:
            return False, None
        if not has_level(event, command.level):
            return True, None
        if not self._use(event, command.name, user_s=command.user_cooldown_s, global_s=command.global_cooldown_s):
            return True, None
        return True, CommandCall(command, args)

    def _use(self, event: ChatEvent, name: str, *, user_s: float, global_s: float) -> bool:
        """Both cooldowns ready: start them and say yes; otherwise change nothing."""
        per_user = self._cooldown(user_s)
        everyone = self._cooldown(global_s)
        user_key = (event.channel_key, name, event.author_id)
        global_key = (event.channel_key, name)
        if not (per_user.ready(user_key) and everyone.ready(global_key)):
            return False
        per_user.trigger(user_key)
        everyone.trigger(global_key)
        return True

    def _cooldown(self, duration_s: float) -> Cooldown[tuple[str, ...]]:
        # One Cooldown per duration: commands with the same duration share it, keyed apart.
        if duration_s not in self._cooldowns:
            self._cooldowns[duration_s] = Cooldown(duration_s, clock=self.clock)
        return self._cooldowns[duration_s]
