"""The console's own settings section (``COSTAR_CONSOLE_*``): it lives in the plug-in, not in engine."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from engine.settings import Settings, section_config

__all__ = ["CONSOLE", "ConsoleSettings", "console_settings"]

CONSOLE = "console"  # the platform's name: ChatEvent.platform, its settings section, its limits


class ConsoleSettings(BaseSettings):
    model_config = section_config("COSTAR_CONSOLE_")

    user: str = Field("you", description="the name the console adapter chats under")


def console_settings(settings: Settings) -> ConsoleSettings:
    """The console section of ``settings``."""
    return settings.section(CONSOLE, ConsoleSettings)
