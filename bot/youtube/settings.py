"""The YouTube platform's own settings section (``YOUTUBE_*``): it lives in the plug-in, not in engine."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

from bot.youtube.messages import PLATFORM
from engine.settings import Settings, section_config

__all__ = ["YouTubeSettings", "youtube_settings"]


class YouTubeSettings(BaseSettings):
    model_config = section_config("YOUTUBE_")

    client_secrets_file: Path | None = Field(
        None, description="the OAuth client JSON downloaded from Google Cloud; setting it starts the YouTube adapter"
    )
    token_file: Path | None = Field(
        None, description="where `costar youtube auth` keeps the token; default DATA_DIR/youtube_tokens.json"
    )
    read: Literal["stream", "poll"] = Field(
        "stream",
        description="stream: liveChatMessages.streamList over gRPC, polling when YouTube refuses it;"
        " poll: liveChatMessages.list only",
    )
    broadcast_id: str | None = Field(None, description="read this broadcast's chat; default: your active broadcast")
    quota_units_per_day: int = Field(10_000, ge=100, description="the Google Cloud project's daily quota")
    stream_hours: float = Field(4.0, gt=0, description="how long a stream the day's quota must last")
    reply_share: float = Field(
        0.4, gt=0, lt=1, description="share of the daily quota spent on sending; the rest pays for reading"
    )
    quota_file: Path | None = Field(
        None, description="units spent today, kept across restarts; default DATA_DIR/youtube_quota.json"
    )
    reply_cooldown_s: float = Field(20.0, ge=0, description="a chatter just answered waits this long")
    stale_after_s: float = Field(90.0, gt=0, description="a line not answered within this long is dropped")
    command_cooldown_s: float = Field(10.0, ge=0, description="cooldown of !persona and !forgetme")
    chime_in: bool = Field(False, description="also answer lines that do not address the character")
    rate_limit_pause_s: float = Field(60.0, gt=0, description="after rateLimitExceeded, send nothing for this long")


def youtube_settings(settings: Settings) -> YouTubeSettings:
    """The YouTube section of ``settings``."""
    return settings.section(PLATFORM, YouTubeSettings)
