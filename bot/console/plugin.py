"""The console's plug-in declaration (see :mod:`bot.plugin`)."""

from __future__ import annotations

from bot.console.settings import CONSOLE, ConsoleSettings
from bot.plugin import Platform
from engine.output.limits import PlatformLimits
from engine.settings import Settings

__all__ = ["PLUGIN"]


def _limits() -> PlatformLimits:
    from bot.console.adapter import CONSOLE_LIMITS

    return CONSOLE_LIMITS


def _starts_on_its_own(settings: Settings) -> bool:
    # Never from its settings: bot.app starts the console when asked (--console) or when no other
    # platform's check passes, with arguments only it has (live, push-to-talk).
    return False


PLUGIN = Platform(CONSOLE, ConsoleSettings, _limits, _starts_on_its_own)
