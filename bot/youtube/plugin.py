"""YouTube's plug-in declaration (see :mod:`bot.plugin`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from bot.plugin import Platform
from bot.youtube.messages import PLATFORM
from bot.youtube.settings import YouTubeSettings, youtube_settings
from engine.output.limits import PlatformLimits
from engine.settings import Settings

if TYPE_CHECKING:
    from bot.app import Adapter
    from bot.commands import SceneSwitcher
    from engine.manager import ConversationManager

__all__ = ["PLUGIN"]


def _limits() -> PlatformLimits:
    from bot.youtube.limits import YOUTUBE_LIMITS

    return YOUTUBE_LIMITS


def _configured(settings: Settings) -> bool:
    return youtube_settings(settings).client_secrets_file is not None


def _adapter(settings: Settings, manager: ConversationManager, scenes: SceneSwitcher | None) -> Adapter:
    from bot.youtube.adapter import YouTubeAdapter

    return YouTubeAdapter(settings, manager)


def _auth(args: argparse.Namespace, settings: Settings) -> int:
    from bot.youtube.auth import authorize

    authorize(settings, youtube_settings(settings), open_browser=not args.no_browser)
    return 0


def _commands(commands: Any) -> None:
    youtube = commands.add_parser("youtube", help="one-time YouTube login for the channel the co-host speaks as")
    youtube.add_argument("action", choices=["auth"])
    youtube.add_argument("--no-browser", action="store_true", help="print the login URL instead of opening it")
    youtube.set_defaults(handler=_auth)


PLUGIN = Platform(PLATFORM, YouTubeSettings, _limits, _configured, _adapter, _commands)
