"""Stream events on Twitch: the real twitchio 3 client against the fake's EventSub (tests/fake_twitch.py)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from bot.twitch_auth import StoredToken, TokenStore, authorize_device
from engine.backends.scripted import ScriptedBackend
from engine.settings import Settings
from tests.fake_twitch import BROADCASTER_SCOPES, FakeChatUser, FakeTwitch
from tests.test_moderation import SLUR
from tests.test_twitch import (  # noqa: F401 - fixtures
    CHANNEL,
    VIEWER,
    TwitchSettings,
    fake,
    managed,
    running,
    store_bot_token,
    twitch_settings,
    until,
)

pytestmark = pytest.mark.timeout(120)

RAIDER = FakeChatUser("5000", "bigstreamer", "BigStreamer")


def store_broadcaster_token(settings: Settings, fake: FakeTwitch, scopes: list[str]) -> StoredToken:
    access, refresh = fake.issue_user_token(fake.users[CHANNEL.id], scopes=scopes)
    token = StoredToken(CHANNEL.id, CHANNEL.login, access, refresh)
    TokenStore(settings.core.data_dir / "twitch_broadcaster_tokens.json").save(token)
    return token


async def stored_lines(manager, text_part: str) -> list[str]:  # type: ignore[no-untyped-def]
    rows = await manager.memory.recent_messages("twitch", CHANNEL.id, limit=10_000)
    return [f"{row.author_name}: {row.text}" for row in rows if text_part in row.text]


# -- subscribing --------------------------------------------------------------------------------


async def test_without_a_broadcaster_login_the_bot_subscribes_to_what_its_own_token_allows(
    fake: FakeTwitch, twitch_settings: TwitchSettings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    caplog.set_level(logging.INFO, logger="bot.twitch_adapter")
    async with managed(settings, ScriptedBackend()) as manager, running(settings, manager) as adapter:
        pass
    types = sorted(s.type for s in fake.subscriptions.values())
    assert types == ["channel.chat.message", "channel.chat.notification", "stream.offline", "stream.online"]
    assert adapter.events_on[CHANNEL.id] == ["subs, gifts and raids", "stream online", "stream offline"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("no follows" in w and "moderator:read:followers" in w and "--broadcaster" in w for w in warnings)
    assert any("no cheers" in w and "bits:read" in w for w in warnings)
    assert any("no channel-point redemptions" in w and "channel:read:redemptions" in w for w in warnings)


async def test_a_scope_the_broadcaster_did_not_grant_is_skipped_by_name_and_the_rest_work(
    fake: FakeTwitch, twitch_settings: TwitchSettings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    store_broadcaster_token(settings, fake, ["bits:read", "channel:read:redemptions"])
    caplog.set_level(logging.INFO, logger="bot.twitch_adapter")
    backend = ScriptedBackend()
    async with managed(settings, backend) as manager, running(settings, manager) as adapter:
        assert "follows" not in adapter.events_on[CHANNEL.id]
        assert {"cheers", "channel-point redemptions"} <= set(adapter.events_on[CHANNEL.id])
        assert await fake.follow(CHANNEL.id, VIEWER) == 0  # nobody subscribed to follows
        await fake.cheer(CHANNEL.id, VIEWER, 500, "Cheer500 great run")
        await until(lambda: fake.chat_messages)
    assert fake.chat_messages[0].message == "Thank you for the 500 bits, Viewer!"
    assert fake.refused_subscriptions == []  # skipped before asking, not refused by Twitch
    missing = [r.getMessage() for r in caplog.records if "no follows" in r.getMessage()]
    assert missing and "broadcaster's token lacks scope moderator:read:followers" in missing[0]


async def test_a_subscription_twitch_refuses_is_logged_with_its_scope_and_the_rest_work(
    fake: FakeTwitch, twitch_settings: TwitchSettings, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    store_broadcaster_token(settings, fake, BROADCASTER_SCOPES)
    # The token says it has bits:read, but Twitch (the fake) insists on a scope it lacks.
    monkeypatch.setitem(
        __import__("tests.fake_twitch").fake_twitch.REQUIRED_SCOPES, "channel.cheer", (("bits:read:more",), None)
    )
    caplog.set_level(logging.INFO, logger="bot.twitch_adapter")
    async with managed(settings, ScriptedBackend()) as manager, running(settings, manager) as adapter:
        on = adapter.events_on[CHANNEL.id]
    assert "cheers" not in on and {"follows", "channel-point redemptions", "subs, gifts and raids"} <= set(on)
    assert [kind for kind, _ in fake.refused_subscriptions] == ["channel.cheer"]
    assert any("no cheers" in r.getMessage() and "bits:read" in r.getMessage() for r in caplog.records)


async def test_broadcaster_device_login_asks_for_the_event_scopes_and_stores_a_second_token(
    fake: FakeTwitch, twitch_settings: TwitchSettings
) -> None:
    settings = twitch_settings()
    fake.device_user = fake.users[CHANNEL.id]
    fake.device_scopes = list(BROADCASTER_SCOPES)
    said: list[str] = []
    token = await authorize_device(settings, announce=said.append, broadcaster=True)
    assert token.user_id == CHANNEL.id
    assert TokenStore(settings.core.data_dir / "twitch_broadcaster_tokens.json").load() == token
    assert not (settings.core.data_dir / "twitch_tokens.json").exists()  # the bot's login is untouched
    assert "BROADCASTER" in said[0]
    device = next(r for r in fake.requests if r.path == "/oauth2/device")
    asked = " ".join([*device.query.values(), str(device.body or "")])
    assert all(scope in asked for scope in BROADCASTER_SCOPES)


# -- reacting -----------------------------------------------------------------------------------


async def test_a_raid_is_thanked_once_stored_and_a_redelivery_changes_nothing(
    fake: FakeTwitch, twitch_settings: TwitchSettings
) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    async with managed(settings, ScriptedBackend()) as manager, running(settings, manager) as adapter:
        notice_id = await fake.raid(CHANNEL.id, RAIDER, 120)
        await until(lambda: fake.chat_messages)
        # EventSub delivers at least once: the same notification again.
        raid = {
            **__import__("tests.fake_twitch").fake_twitch._user_fields("user", RAIDER),
            "viewer_count": 120,
            "profile_image_url": "",
        }
        again = fake._notice(CHANNEL.id, RAIDER, "raid", raid, notice_id=notice_id)
        await fake.notify("channel.chat.notification", CHANNEL.id, again)
        await asyncio.sleep(0.3)
        await adapter.director.join()
        stored = await stored_lines(manager, "raided")
        seen = manager.metrics.stream_events.labels("twitch", "raid")._value.get()
    assert [m.message for m in fake.chat_messages] == ["Welcome raiders from BigStreamer! 120 of you!"]
    assert fake.chat_messages[0].reply_parent_message_id is None  # an event is no chat message to thread under
    assert stored == ["BigStreamer: *raided the channel with 120 viewers*"]
    assert seen == 1


async def test_a_raider_name_with_a_slur_or_a_link_is_not_repeated(
    fake: FakeTwitch, twitch_settings: TwitchSettings
) -> None:
    settings = twitch_settings(reply_cooldown_s=0)
    store_bot_token(settings, fake)
    slurred = FakeChatUser("6000", "raider1", f"{SLUR}Lord")
    linked = FakeChatUser("6001", "raider2", "free-subs.example.com")
    async with managed(settings, ScriptedBackend()) as manager, running(settings, manager) as adapter:
        await fake.raid(CHANNEL.id, slurred, 30)
        await until(lambda: len(fake.chat_messages) == 1)
        await fake.raid(CHANNEL.id, linked, 40)
        await until(lambda: len(fake.chat_messages) == 2)
        await adapter.director.join()
    sent = [m.message for m in fake.chat_messages]
    assert sent == ["Welcome raiders from a fellow streamer! 30 of you!", "Welcome raiders from a fellow streamer! 40 of you!"]
    assert all(SLUR not in m.lower() and "example.com" not in m for m in sent)
