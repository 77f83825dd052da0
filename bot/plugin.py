"""What a platform plug-in declares, like one of simonw/llm's plugin hooks: each platform package
(``bot/<name>/plugin.py``) fills in one :class:`Platform` and :mod:`bot.platforms` lists them.

- ``settings``: its own settings section (a pydantic-settings class, read with costar's, refused
  if misspelt like costar's, shown by ``costar settings``);
- ``limits``: its :class:`~engine.output.limits.PlatformLimits`, read from its package when asked;
- ``configured``: its start-up check, whether this machine uses it (a token or client id is set);
- ``make_adapter``: how to build its adapter (none for the console, which ``bot.app`` builds);
- ``add_commands``: its ``costar NAME ...`` subcommand(s), e.g. ``costar twitch auth``;
- ``is_private``: whether talk in one of its channels must never reach the stream (overlay, voice,
  OBS), where the platform has such channels.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic_settings import BaseSettings

from engine.output.limits import PlatformLimits
from engine.settings import Settings

if TYPE_CHECKING:
    from bot.app import Adapter
    from bot.commands import SceneSwitcher
    from engine.manager import ConversationManager

__all__ = ["Handler", "MakeAdapter", "Platform"]

MakeAdapter = Callable[["Settings", "ConversationManager", "SceneSwitcher | None"], "Adapter"]
Handler = Callable[[argparse.Namespace, Settings], int]


@dataclass(frozen=True, slots=True)
class Platform:
    name: str  # ChatEvent.platform, the settings section's name, the limits' key
    settings: type[BaseSettings]
    limits: Callable[[], PlatformLimits]
    configured: Callable[[Settings], bool]  # the start-up check: does this machine use it?
    make_adapter: MakeAdapter | None = None
    add_commands: Callable[[Any], None] | None = None  # its `costar NAME ...` subcommand(s)
    is_private: Callable[[Settings, str], bool] | None = None  # (settings, channel_id): kept off stream?

    def starts(self, settings: Settings) -> bool:
        return self.make_adapter is not None and self.configured(settings)
