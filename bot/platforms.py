"""The one registry of chat platforms, like simonw/llm's plugin hooks: each platform package
declares itself in its ``plugin`` module (:class:`bot.plugin.Platform`: its settings section, its
output limits, its start-up check, its adapter and its ``costar`` subcommand) and is listed here.

``load_settings`` reads costar's settings with every platform's section; ``bot.app`` registers every
platform's limits on the manager (a replayed line comes out as its platform would get it) and starts
the configured ones; ``bot.cli`` adds their subcommands from here. Engine names no platform. The
console is the fallback when none is configured.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic_settings import BaseSettings

from bot.console.plugin import PLUGIN as CONSOLE
from bot.discord.plugin import PLUGIN as DISCORD
from bot.plugin import Platform
from bot.twitch.plugin import PLUGIN as TWITCH
from bot.youtube.plugin import PLUGIN as YOUTUBE
from engine import settings as engine_settings
from engine.settings import Settings

if TYPE_CHECKING:
    from engine.manager import ConversationManager

__all__ = [
    "PLATFORMS",
    "Platform",
    "channel_is_private",
    "known_variables",
    "load_settings",
    "register_limits",
    "settings_sections",
]

PLATFORMS: tuple[Platform, ...] = (CONSOLE, DISCORD, TWITCH, YOUTUBE)


def settings_sections() -> dict[str, type[BaseSettings]]:
    """Every platform's own settings section, by platform name."""
    return {platform.name: platform.settings for platform in PLATFORMS}


def load_settings(env_file: Path | str | None = ".env", **overrides: dict[str, Any]) -> Settings:
    """costar's settings with every platform's section (see :func:`engine.settings.load_settings`)."""
    return engine_settings.load_settings(env_file, sections=settings_sections(), **overrides)


def known_variables() -> set[str]:
    """Every variable costar reads: its own sections' and every platform's."""
    return engine_settings.known_variables(settings_sections())


def register_limits(manager: ConversationManager) -> None:
    """Every platform's output rules on the manager (an adapter's own registration wins)."""
    for platform in PLATFORMS:
        manager.platform_limits.setdefault(platform.name, platform.limits())


def channel_is_private(settings: Settings, channel_key: str) -> bool:
    """Whether ``platform:channel`` is one whose talk never reaches the stream, as its platform says."""
    name, _, channel_id = channel_key.partition(":")
    for platform in PLATFORMS:
        if platform.name == name and platform.is_private is not None:
            return platform.is_private(settings, channel_id)
    return False
