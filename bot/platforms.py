"""The one registry of chat platforms, like simonw/llm's plugin hooks: each platform says what its
output limits are (declared in its own package), when it is configured (its start-up check), how to
make its adapter, and which ``costar`` subcommand logs it in. ``bot.app`` registers every platform's
limits on the manager (a replayed line comes out as its platform would get it) and starts the
configured ones; ``bot.cli`` adds their subcommands from here; engine names no platform. The console
is the fallback when none is configured.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.output.limits import PlatformLimits
from engine.settings import Settings

if TYPE_CHECKING:
    from bot.app import Adapter
    from bot.commands import SceneSwitcher
    from engine.manager import ConversationManager

__all__ = ["PLATFORMS", "Platform", "register_limits"]

MakeAdapter = Callable[["Settings", "ConversationManager", "SceneSwitcher | None"], "Adapter"]
Handler = Callable[[argparse.Namespace, Settings], int]


@dataclass(frozen=True, slots=True)
class Platform:
    name: str
    limits: Callable[[], PlatformLimits]  # read from the platform's own package when asked
    configured: Callable[[Settings], bool] | None = None  # the start-up check: does this machine use it?
    make_adapter: MakeAdapter | None = None
    add_commands: Callable[[Any], None] | None = None  # its `costar NAME ...` subcommand(s)

    def starts(self, settings: Settings) -> bool:
        return self.configured is not None and self.make_adapter is not None and self.configured(settings)


def register_limits(manager: ConversationManager) -> None:
    """Every platform's output rules on the manager (an adapter's own registration wins)."""
    for platform in PLATFORMS:
        manager.platform_limits.setdefault(platform.name, platform.limits())


def _console_limits() -> PlatformLimits:
    from bot.console.adapter import CONSOLE_LIMITS

    return CONSOLE_LIMITS


# -- Discord -------------------------------------------------------------------------------------


def _discord_limits() -> PlatformLimits:
    from bot.discord.delivery import DISCORD_LIMITS

    return DISCORD_LIMITS


def _discord_configured(settings: Settings) -> bool:
    token = settings.discord.token
    return token is not None and bool(token.get_secret_value().strip())


def _discord_adapter(settings: Settings, manager: ConversationManager, scenes: SceneSwitcher | None) -> Adapter:
    from bot.discord.adapter import DiscordAdapter

    return DiscordAdapter(settings, manager)


# -- Twitch --------------------------------------------------------------------------------------


def _twitch_limits() -> PlatformLimits:
    from bot.twitch.limits import TWITCH_LIMITS

    return TWITCH_LIMITS


def _twitch_adapter(settings: Settings, manager: ConversationManager, scenes: SceneSwitcher | None) -> Adapter:
    from bot.twitch.adapter import TwitchAdapter

    return TwitchAdapter(settings, manager, scenes=scenes)


def _twitch_auth(args: argparse.Namespace, settings: Settings) -> int:
    from bot.twitch.auth import authorize_device

    asyncio.run(authorize_device(settings, broadcaster=args.broadcaster))
    return 0


def _twitch_commands(commands: Any) -> None:
    twitch = commands.add_parser("twitch", help="one-time Twitch login for the bot account")
    twitch.add_argument("action", choices=["auth"])
    twitch.add_argument(
        "--broadcaster",
        action="store_true",
        help="log in the channel's owner (scopes for follows, cheers and channel-point redemptions)",
    )
    twitch.set_defaults(handler=_twitch_auth)


# -- YouTube -------------------------------------------------------------------------------------


def _youtube_limits() -> PlatformLimits:
    from bot.youtube.limits import YOUTUBE_LIMITS

    return YOUTUBE_LIMITS


def _youtube_configured(settings: Settings) -> bool:
    from bot.youtube.settings import YouTubeSettings

    return YouTubeSettings().client_secrets_file is not None


def _youtube_adapter(settings: Settings, manager: ConversationManager, scenes: SceneSwitcher | None) -> Adapter:
    from bot.youtube.adapter import YouTubeAdapter

    return YouTubeAdapter(settings, manager)


def _youtube_auth(args: argparse.Namespace, settings: Settings) -> int:
    from bot.youtube.auth import authorize
    from bot.youtube.settings import YouTubeSettings

    authorize(settings, YouTubeSettings(), open_browser=not args.no_browser)
    return 0


def _youtube_commands(commands: Any) -> None:
    youtube = commands.add_parser("youtube", help="one-time YouTube login for the channel the co-host speaks as")
    youtube.add_argument("action", choices=["auth"])
    youtube.add_argument("--no-browser", action="store_true", help="print the login URL instead of opening it")
    youtube.set_defaults(handler=_youtube_auth)


PLATFORMS: tuple[Platform, ...] = (
    Platform("console", _console_limits),  # started by bot.app itself: asked for, or when nothing else is
    Platform("discord", _discord_limits, _discord_configured, _discord_adapter),
    Platform(
        "twitch", _twitch_limits, lambda settings: bool(settings.twitch.client_id), _twitch_adapter, _twitch_commands
    ),
    Platform("youtube", _youtube_limits, _youtube_configured, _youtube_adapter, _youtube_commands),
)
