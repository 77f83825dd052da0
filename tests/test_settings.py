"""Settings: documented defaults, clear errors naming the variable, typos refused; each platform's
section lives in its package and keeps the variable names people already set."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot import platforms
from bot.console.settings import console_settings
from bot.discord.settings import discord_settings
from bot.twitch.settings import twitch_settings
from bot.youtube.settings import youtube_settings
from engine.errors import SettingsError
from engine.settings import load_settings

REPO = Path(__file__).resolve().parents[1]


def test_defaults_need_no_configuration() -> None:
    settings = load_settings(None)
    assert settings.backend.kind == "llamacpp" and settings.core.default_persona == "pip"
    assert settings.db_path == Path("data") / "costar.sqlite3"


def test_openai_backend_without_url_names_the_missing_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSTAR_BACKEND_KIND", "openai")
    with pytest.raises(SettingsError, match="COSTAR_BACKEND_BASE_URL is required"):
        load_settings(None)


def test_malformed_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSTAR_BACKEND_CONTEXT_TOKENS", "lots")
    with pytest.raises(SettingsError, match="COSTAR_BACKEND_CONTEXT_TOKENS"):
        load_settings(None)


def test_misspelt_variable_in_env_file_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("COSTAR_DEFAULT_PERSONNA=pip\n")
    with pytest.raises(
        SettingsError, match="unknown setting COSTAR_DEFAULT_PERSONNA; did you mean COSTAR_DEFAULT_PERSONA"
    ):
        load_settings(env_file)


def test_env_file_values_are_read_and_secrets_stay_hidden(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("DISCORD_TOKEN=super-secret-token\nCOSTAR_DEFAULT_PERSONA=captain-brine\n")
    settings = platforms.load_settings(env_file)
    assert settings.core.default_persona == "captain-brine"
    token = discord_settings(settings).token
    assert token is not None and token.get_secret_value() == "super-secret-token"
    assert "super-secret-token" not in repr(settings)


def test_every_setting_is_documented_in_env_example() -> None:
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (REPO / ".env.example").read_text(), flags=re.MULTILINE))
    assert platforms.known_variables() - documented == set()


def test_platform_variables_keep_the_names_people_set(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "TWITCH_CLIENT_ID=abc123\nTWITCH_SEND_LIMIT=7\nCOSTAR_CONSOLE_USER=ann\nYOUTUBE_STREAM_HOURS=2.5\n"
        "COSTAR_STREAM_DISCORD_LIVE_CHANNELS=11, 22\nCOSTAR_STREAM_DISCORD_WELCOME_CHANNEL=33\n"
        "DISCORD_PRIVATE_CHANNELS=44\n"
    )
    settings = platforms.load_settings(env_file)
    assert (twitch_settings(settings).client_id, twitch_settings(settings).send_limit) == ("abc123", 7)
    assert console_settings(settings).user == "ann"
    assert youtube_settings(settings).stream_hours == 2.5
    discord = discord_settings(settings)
    assert (discord.live_channels, discord.welcome_channel, discord.private_channels) == (["11", "22"], "33", [44])


@pytest.mark.parametrize(
    ("line", "suggestion"),
    [
        ("TWITCH_CLIENT_IDD=abc", "TWITCH_CLIENT_ID"),
        ("COSTAR_STREAM_DISCORD_LIVE_CHANNEL=1", "COSTAR_STREAM_DISCORD_LIVE_CHANNELS"),
        ("YOUTUBE_STREAM_HOUR=2", "YOUTUBE_STREAM_HOURS"),
        ("COSTAR_CONSOLE_USR=ann", "COSTAR_CONSOLE_USER"),
    ],
)
def test_a_misspelt_platform_variable_is_refused_with_a_suggestion(tmp_path: Path, line: str, suggestion: str) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(line + "\n")
    with pytest.raises(SettingsError, match=f"unknown setting {line.split('=')[0]}; did you mean {suggestion}\\?"):
        platforms.load_settings(env_file)


@pytest.mark.parametrize(
    ("line", "variable"),
    [("DISCORD_ALLOWED_CHANNELS=general", "DISCORD_ALLOWED_CHANNELS"), ("TWITCH_SEND_LIMIT=0", "TWITCH_SEND_LIMIT")],
)
def test_a_bad_platform_value_names_the_variable(tmp_path: Path, line: str, variable: str) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(line + "\n")
    with pytest.raises(SettingsError, match=f"invalid settings: {variable}: "):
        platforms.load_settings(env_file)


def test_settings_loaded_without_the_platforms_read_a_platform_section_from_the_same_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("TWITCH_CLIENT_ID=from-the-file\n")
    settings = load_settings(env_file)  # engine's loader alone, as a benchmark calls it
    assert settings.platforms == {}
    assert twitch_settings(settings).client_id == "from-the-file"
