"""Stream events on Twitch: the real twitchio 3 client against the fake's EventSub (tests/fake_twitch.py)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

import pytest

from bot.twitch_auth import StoredToken, TokenStore, authorize_device
from engine.backends.scripted import ScriptedBackend
from engine.flow.clock import Clock, ManualClock, ScaledClock
from engine.flow.ratelimit import most_in_any_window
from engine.manager import ConversationManager
from engine.settings import Settings
from tests import test_twitch
from tests.fake_twitch import BROADCASTER_SCOPES, REQUIRED_SCOPES, FakeChatUser, FakeTwitch
from tests.test_moderation import SLUR
from tests.test_twitch import (
    CHANNEL,
    CHAT_SPEED,
    CLOCK_SPEED,
    VIEWER,
    TwitchSettings,
    addressed_rows,
    load_chat,
    managed,
    running,
    store_bot_token,
    until,
)

# The fake Twitch and its settings, shared with the chat tests.
fake = test_twitch.fake
twitch_settings = test_twitch.twitch_settings

pytestmark = pytest.mark.timeout(120)

RAIDER = FakeChatUser("5000", "bigstreamer", "BigStreamer")


def store_broadcaster_token(settings: Settings, fake: FakeTwitch, scopes: list[str]) -> StoredToken:
    access, refresh = fake.issue_user_token(fake.users[CHANNEL.id], scopes=scopes)
    token = StoredToken(CHANNEL.id, CHANNEL.login, access, refresh)
    TokenStore(settings.core.data_dir / "twitch_broadcaster_tokens.json").save(token)
    return token


async def stored_lines(manager: ConversationManager, text_part: str) -> list[str]:
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
    monkeypatch.setitem(REQUIRED_SCOPES, "channel.cheer", (("bits:read:more",), None))
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
        await fake.raid(CHANNEL.id, RAIDER, 120, notice_id=notice_id)
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
    clock = ManualClock()
    async with managed(settings, ScriptedBackend()) as manager, running(settings, manager, clock) as adapter:
        await fake.raid(CHANNEL.id, slurred, 30)
        await until(lambda: len(fake.chat_messages) == 1)
        await clock.advance(60)  # past the card's raid cooldown
        await fake.raid(CHANNEL.id, linked, 40)
        await until(lambda: len(fake.chat_messages) == 2)
        await adapter.director.join()
    sent = [m.message for m in fake.chat_messages]
    assert sent == [
        "Welcome raiders from a fellow streamer! 30 of you!",
        "Welcome raiders from a fellow streamer! 40 of you!",
    ]
    assert all(SLUR not in m.lower() and "example.com" not in m for m in sent)


# -- a recorded chat with a raid, a gift bomb and a wave of follows -----------------------------


def stored_event_ids(db_path: Path) -> list[str]:
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT platform_message_id FROM messages WHERE platform_message_id LIKE 'event:%'")
        return [row[0] for row in rows]


@pytest.mark.slow
async def test_recorded_chat_with_a_raid_a_gift_bomb_and_follows_gets_one_thanks_each_within_twitchs_limit(
    fake: FakeTwitch, twitch_settings: TwitchSettings, shared_data: Path
) -> None:
    rows = load_chat(shared_data)
    addressed = addressed_rows(rows)
    clock = ScaledClock(CLOCK_SPEED)
    fake.clock = clock
    settings = twitch_settings()
    store_bot_token(settings, fake)
    store_broadcaster_token(settings, fake, BROADCASTER_SCOPES)
    gifter = FakeChatUser("7000", "generous", "Generous")
    recipients = [FakeChatUser(f"8{n:03}", f"lucky{n}", f"Lucky{n}") for n in range(50)]
    followers = [FakeChatUser(f"9{n:03}", f"newbie{n}", f"Newbie{n}") for n in range(30)]
    quarter = len(rows) // 4
    injections: dict[int, Callable[[], Awaitable[object]]] = {
        quarter: lambda: fake.raid(CHANNEL.id, RAIDER, 120),
        2 * quarter: lambda: fake.community_gift(CHANNEL.id, gifter, recipients),
    }
    for wave in range(3):  # three bursts of ten follows, far apart
        start = (wave + 1) * len(rows) // 5
        for n in range(10):
            injections[start + n] = lambda f=followers[wave * 10 + n]: fake.follow(CHANNEL.id, f)  # type: ignore[misc]
    backend = ScriptedBackend([f"answer {n}" for n in range(len(rows))])
    async with managed(settings, backend) as manager, running(settings, manager, clock) as adapter:
        await replay_with_events(fake, rows, addressed, clock, injections)
        await clock.sleep(settings.stream.follow_window_s + 90)  # the last welcome's window and cooldown
        await asyncio.wait_for(adapter.scheduler.join(), 30)
        await asyncio.wait_for(adapter.director.join(), 30)
        said = dict(adapter.director.said)
    sent = [m.message for m in fake.chat_messages]
    welcomes = [m for m in sent if m.startswith("Welcome to the crew")]
    print(f"\n{len(sent)} sent, most in any 30 s: {most_in_any_window([m.received_at for m in fake.chat_messages])}; "
          f"reactions: {said}; welcomes: {welcomes}")  # fmt: skip
    assert most_in_any_window([m.received_at for m in fake.chat_messages]) <= 20
    assert all(m.is_sent for m in fake.chat_messages)
    assert sent.count("Welcome raiders from BigStreamer! 120 of you!") == 1
    assert sent.count("Generous just gifted 50 subs! Thank you!") == 1
    assert not any(m.startswith("Thank you for the gift sub") for m in sent)
    assert 1 <= len(welcomes) <= 3  # thirty follows, a handful of welcomes naming a few each
    assert all(" others!" in welcome for welcome in welcomes)
    assert len(stored_event_ids(settings.db_path)) == 1 + 1 + 50 + 30


async def replay_with_events(
    fake: FakeTwitch,
    rows: list[dict[str, str]],
    addressed: set[int],
    clock: Clock,
    injections: dict[int, Callable[[], Awaitable[object]]],
) -> None:
    start = datetime.fromisoformat(rows[0]["published_at"])
    chatters: dict[str, FakeChatUser] = {}
    for index, row in enumerate(rows):
        due = (datetime.fromisoformat(row["published_at"]) - start).total_seconds() / CHAT_SPEED
        if due > clock.now():
            await clock.sleep(due - clock.now())
        if index in injections:
            await injections[index]()
        chatter = chatters.setdefault(
            row["author"], FakeChatUser(f"u{len(chatters) + 1}", f"user{len(chatters) + 1}", row["author"])
        )
        text = f"Pip, {row['message']}" if index in addressed else row["message"]
        await fake.chat(CHANNEL.id, chatter, text, message_id=f"csv-{index}")
