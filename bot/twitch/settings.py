"""The Twitch platform's own settings section (``TWITCH_*``): it lives in the plug-in, not in engine."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from engine.settings import Settings, section_config

__all__ = ["TWITCH", "TwitchSettings", "twitch_settings"]

TWITCH = "twitch"  # the platform's name: ChatEvent.platform, its settings section, its limits


class TwitchSettings(BaseSettings):
    model_config = section_config("TWITCH_")

    client_id: str | None = Field(None, description="setting it starts the Twitch adapter")
    client_secret: SecretStr | None = Field(None, description="secret; optional for a public (device-code) app")
    channels: str = Field("", description="comma-separated channel logins to join; empty: the bot account's own")
    token_file: Path | None = Field(
        None, description="where `costar twitch auth` keeps the bot's token; default DATA_DIR/twitch_tokens.json"
    )
    send_limit: int = Field(
        20, ge=1, description="messages per 30 s where the bot is not a moderator (Twitch locks out above 20)"
    )
    moderator_send_limit: int = Field(
        100, ge=1, description="messages per 30 s where the bot is broadcaster or moderator (Twitch: 100)"
    )
    reply_cooldown_s: float = Field(
        20.0, ge=0, description="a chatter who was just answered waits this long for the next answer"
    )
    stale_after_s: float = Field(
        45.0, gt=0, description="a line not answered within this long is dropped, not answered late"
    )
    command_cooldown_s: float = Field(10.0, ge=0, description="cooldown of !persona and !forgetme")
    forgets_per_minute: int = Field(
        6, ge=1, description="most !forgetme run per channel per minute; more wait their turn, none is lost"
    )
    broadcaster_token_file: Path | None = Field(
        None,
        description="where `costar twitch auth --broadcaster` keeps the broadcaster's token;"
        " default DATA_DIR/twitch_broadcaster_tokens.json",
    )
    send_timeout_s: float = Field(
        10.0, gt=0, description="give up on a chat message Twitch has not answered within this long"
    )
    chime_in: bool = Field(
        False, description="also answer lines that do not address the character (when budget allows)"
    )


def twitch_settings(settings: Settings) -> TwitchSettings:
    """The Twitch section of ``settings``."""
    return settings.section(TWITCH, TwitchSettings)
