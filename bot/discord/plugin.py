"""Discord's plug-in declaration (see :mod:`bot.plugin`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.discord.settings import DISCORD, DiscordSettings, discord_settings
from bot.plugin import Platform
from engine.output.limits import PlatformLimits
from engine.settings import Settings

if TYPE_CHECKING:
    from bot.app import Adapter
    from bot.commands import SceneSwitcher
    from engine.manager import ConversationManager

__all__ = ["PLUGIN"]


def _limits() -> PlatformLimits:
    from bot.discord.delivery import DISCORD_LIMITS

    return DISCORD_LIMITS


def _configured(settings: Settings) -> bool:
    token = discord_settings(settings).token
    return token is not None and bool(token.get_secret_value().strip())


def _adapter(settings: Settings, manager: ConversationManager, scenes: SceneSwitcher | None) -> Adapter:
    from bot.discord.adapter import DiscordAdapter

    return DiscordAdapter(settings, manager)


def _is_private(settings: Settings, channel_id: str) -> bool:
    # DISCORD_PRIVATE_CHANNELS: like a DM, its talk never reaches the stream.
    return channel_id.isdigit() and int(channel_id) in discord_settings(settings).private_channels


PLUGIN = Platform(DISCORD, DiscordSettings, _limits, _configured, _adapter, is_private=_is_private)
