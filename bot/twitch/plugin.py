"""Twitch's plug-in declaration (see :mod:`bot.plugin`)."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING, Any

from bot.plugin import Platform
from bot.twitch.settings import TWITCH, TwitchSettings, twitch_settings
from engine.output.limits import PlatformLimits
from engine.settings import Settings

if TYPE_CHECKING:
    from bot.app import Adapter
    from bot.commands import SceneSwitcher
    from engine.manager import ConversationManager

__all__ = ["PLUGIN"]


def _limits() -> PlatformLimits:
    from bot.twitch.limits import TWITCH_LIMITS

    return TWITCH_LIMITS


def _configured(settings: Settings) -> bool:
    return bool(twitch_settings(settings).client_id)


def _adapter(settings: Settings, manager: ConversationManager, scenes: SceneSwitcher | None) -> Adapter:
    from bot.twitch.adapter import TwitchAdapter

    return TwitchAdapter(settings, manager, scenes=scenes)


def _auth(args: argparse.Namespace, settings: Settings) -> int:
    from bot.twitch.auth import authorize_device

    asyncio.run(authorize_device(settings, broadcaster=args.broadcaster))
    return 0


def _commands(commands: Any) -> None:
    twitch = commands.add_parser("twitch", help="one-time Twitch login for the bot account")
    twitch.add_argument("action", choices=["auth"])
    twitch.add_argument(
        "--broadcaster",
        action="store_true",
        help="log in the channel's owner (scopes for follows, cheers and channel-point redemptions)",
    )
    twitch.set_defaults(handler=_auth)


PLUGIN = Platform(TWITCH, TwitchSettings, _limits, _configured, _adapter, _commands)
