"""A platform that refuses the login or cannot be reached stops with one line saying what to check,
never a library's traceback: Discord's login (fake Discord refusing the token, or no server at
all) and `costar twitch auth` with nothing answering at Twitch's address."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator

import discord
import pytest
import twitchio

from bot.app import run
from bot.cli import main
from engine.settings import Settings
from tests.fake_discord import FakeDiscord

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on: connections to it are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        yield probe.getsockname()[1]  # bound, never listening


def _adapter_stopped(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.getMessage().startswith("adapter stopped")]


async def test_a_refused_discord_token_stops_with_one_line_naming_the_setting(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(backend={"kind": "scripted"}, discord={"token": "fake"})
    async with FakeDiscord() as discord_server:
        discord_server.refuse_token = True
        assert await run(settings) == 1
    [stopped] = _adapter_stopped(caplog)
    assert "Discord refused DISCORD_TOKEN" in stopped.getMessage()
    assert stopped.exc_info is None  # no traceback under it


async def test_an_unreachable_discord_stops_with_one_line_saying_to_check_the_network(
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    closed_port: int,
) -> None:
    monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{closed_port}/api/v10")
    settings = make_settings(backend={"kind": "scripted"}, discord={"token": "fake"})
    assert await run(settings) == 1
    [stopped] = _adapter_stopped(caplog)
    assert "cannot reach Discord" in stopped.getMessage() and "internet connection" in stopped.getMessage()
    assert stopped.exc_info is None


def test_twitch_auth_with_twitch_unreachable_says_so_in_one_line(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], closed_port: int
) -> None:
    monkeypatch.setattr(twitchio.http.Route, "ID_BASE", f"http://127.0.0.1:{closed_port}/oauth2/")
    monkeypatch.setenv("TWITCH_CLIENT_ID", "x")
    monkeypatch.setenv("COSTAR_DATA_DIR", str(tmp_path))
    assert main(["--env-file", "/nonexistent", "twitch", "auth"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("costar: cannot reach Twitch (id.twitch.tv)") and "internet connection" in err
    assert len(err.splitlines()) == 1, err
