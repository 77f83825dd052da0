"""Stream events on Twitch: the real twitchio 3 client against the fake's EventSub (tests/fake_twitch.py)."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

import pytest

from bot.twitch.adapter import TwitchAdapter
from bot.twitch.auth import StoredToken, TokenStore, authorize_device
from engine.backends.scripted import ScriptedBackend
from engine.base.clock import Clock, ManualClock, ScaledClock
from engine.flow.ratelimit import most_in_any_window
from engine.manager import ConversationManager
from engine.settings import Settings
from personas.stream import Reaction
from tests import test_twitch
from tests.fake_twitch import (
    ANONYMOUS_GIFTER_ACCOUNT,
    BROADCASTER_SCOPES,
    REQUIRED_SCOPES,
    FakeChatUser,
    FakeTwitch,
)
from tests.test_moderation import SLUR
from tests.test_twitch import (
    CHANNEL,
    CHAT_SPEED,
    CLOCK_SPEED,
    MOD,
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
    caplog.set_level(logging.INFO, logger="bot.twitch.adapter")
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
    caplog.set_level(logging.INFO, logger="bot.twitch.adapter")
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
    caplog.set_level(logging.INFO, logger="bot.twitch.adapter")
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


# -- Twitch events as Twitch sends them ----------------------------------------------------------


def viewer_ids(db_path: Path) -> list[str]:
    with sqlite3.connect(db_path) as db:
        return [row[0] for row in db.execute("SELECT platform_user_id FROM users")]


def stored_event_rows(db_path: Path) -> list[tuple[str, str, int | None]]:
    """(author name, text, user row id) of every stored event line."""
    with sqlite3.connect(db_path) as db:
        query = "SELECT author_name, text, user_id FROM messages WHERE platform_message_id LIKE 'event:%' ORDER BY id"
        return list(db.execute(query))


async def settled(adapter: TwitchAdapter, seconds: float = 0.3) -> None:
    """Let deliveries in flight arrive and every reaction started be said."""
    await asyncio.sleep(seconds)
    await adapter.director.join()


@pytest.mark.parametrize("gifter", [None, ANONYMOUS_GIFTER_ACCOUNT], ids=["null-chatter", "placeholder-account"])
async def test_an_anonymous_gift_is_thanked_as_an_anonymous_gifter_and_stored_under_no_viewer(
    fake: FakeTwitch, twitch_settings: TwitchSettings, gifter: FakeChatUser | None
) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    lucky = FakeChatUser("8100", "lucky", "Lucky")
    async with managed(settings, ScriptedBackend()) as manager, running(settings, manager) as adapter:
        await fake.gift(CHANNEL.id, gifter, lucky)
        await fake.gift(CHANNEL.id, gifter, VIEWER)  # a second anonymous gifter is not the same viewer
        await until(lambda: fake.chat_messages)
        await settled(adapter)
    sent = [m.message for m in fake.chat_messages]
    assert set(sent) == {"Thank you for the gift sub, an anonymous gifter!"}  # (the same line twice is sent once)
    rows = stored_event_rows(settings.db_path)
    assert [(name, text) for name, text, _ in rows] == [
        ("an anonymous gifter", "*gifted a sub to Lucky*"),
        ("an anonymous gifter", "*gifted a sub to Viewer*"),
    ]
    assert all(user_row is None for _, _, user_row in rows)
    assert not {"None", "", ANONYMOUS_GIFTER_ACCOUNT.id} & set(viewer_ids(settings.db_path))


async def test_an_anonymous_gift_bomb_and_anonymous_cheers_name_nobody_and_are_stored_under_no_viewer(
    fake: FakeTwitch, twitch_settings: TwitchSettings
) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    store_broadcaster_token(settings, fake, BROADCASTER_SCOPES)
    recipients = [FakeChatUser(f"81{n:02}", f"lucky{n}", f"Lucky{n}") for n in range(3)]
    async with managed(settings, ScriptedBackend()) as manager, running(settings, manager) as adapter:
        await fake.community_gift(CHANNEL.id, None, recipients)
        await until(lambda: len(fake.chat_messages) == 1)
        await fake.cheer(CHANNEL.id, None, 100, "Cheer100 from the shadows")
        await until(lambda: len(fake.chat_messages) == 2)
        await fake.cheer(CHANNEL.id, None, 200, "Cheer200", empty_strings=True)  # as twitch-cli sends it
        await until(lambda: len(fake.chat_messages) == 3)
        await settled(adapter)
    assert [m.message for m in fake.chat_messages] == [
        "an anonymous gifter just gifted 3 subs! Thank you!",
        "Thank you for the 100 bits, an anonymous cheerer!",
        "Thank you for the 200 bits, an anonymous cheerer!",
    ]
    rows = stored_event_rows(settings.db_path)
    assert len(rows) == 1 + 3 + 2 and all(user_row is None for _, _, user_row in rows)
    assert viewer_ids(settings.db_path) == []


# -- stream online and offline ------------------------------------------------------------------


def is_live(adapter: TwitchAdapter) -> bool:
    return adapter.director.activity.state("twitch", CHANNEL.id).live


@pytest.mark.parametrize("with_id", [True, False], ids=["offline-with-id", "offline-without-id"])
async def test_online_and_offline_are_stored_and_costar_learns_the_stream_ended(
    fake: FakeTwitch, twitch_settings: TwitchSettings, with_id: bool
) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    async with managed(settings, ScriptedBackend()) as manager, running(settings, manager) as adapter:
        assert not is_live(adapter)
        assert await fake.stream_online(CHANNEL.id) == 1
        await until(lambda: is_live(adapter))
        assert await fake.stream_offline(CHANNEL.id, with_id=with_id) == 1
        await until(lambda: not is_live(adapter))
        await settled(adapter)
    texts = [text for _, text, _ in stored_event_rows(settings.db_path)]
    assert texts == ["*started the stream*", "*ended the stream*"]


async def test_an_offline_sent_while_the_socket_was_away_is_learned_from_helix_on_reconnect(
    fake: FakeTwitch, twitch_settings: TwitchSettings
) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    async with managed(settings, ScriptedBackend()) as manager, running(settings, manager) as adapter:
        await fake.stream_online(CHANNEL.id)
        await until(lambda: is_live(adapter))
        await fake.drop_eventsub()
        assert await fake.stream_offline(CHANNEL.id) == 0  # nobody connected: EventSub keeps nothing
        await until(lambda: fake.welcomes == 2 and not is_live(adapter))
    streams = [r for r in fake.requests if r.path == "/helix/streams"]
    assert len(streams) == 2  # at start, and again once the socket was welcomed back


# -- redelivery ---------------------------------------------------------------------------------


async def test_a_redelivered_cheer_is_stored_once_and_thanked_once(
    fake: FakeTwitch, twitch_settings: TwitchSettings
) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    store_broadcaster_token(settings, fake, BROADCASTER_SCOPES)
    async with managed(settings, ScriptedBackend()) as manager, running(settings, manager) as adapter:
        await fake.cheer(CHANNEL.id, VIEWER, 300, "Cheer300 take my bits")
        await until(lambda: fake.chat_messages)
        assert await fake.redeliver(fake.delivered[-1]) == 1  # the same envelope, the same message id
        await settled(adapter)
    assert [m.message for m in fake.chat_messages] == ["Thank you for the 300 bits, Viewer!"]
    assert [text for _, text, _ in stored_event_rows(settings.db_path)] == [
        '*cheered 300 bits: "Cheer300 take my bits"*'
    ]


async def test_every_kind_of_stream_event_delivered_twice_is_stored_once(
    fake: FakeTwitch, twitch_settings: TwitchSettings
) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    store_broadcaster_token(settings, fake, BROADCASTER_SCOPES)
    sends: list[Callable[[], Awaitable[object]]] = [
        lambda: fake.sub(CHANNEL.id, VIEWER),
        lambda: fake.follow(CHANNEL.id, VIEWER),
        lambda: fake.cheer(CHANNEL.id, None, 50),
        lambda: fake.redemption(CHANNEL.id, VIEWER, "Hydrate", "drink water"),
        lambda: fake.stream_online(CHANNEL.id),
        lambda: fake.stream_offline(CHANNEL.id, with_id=False),
    ]
    async with managed(settings, ScriptedBackend()) as manager, running(settings, manager) as adapter:
        for send in sends:
            await send()
            await fake.redeliver(fake.delivered[-1])
        await settled(adapter, 0.5)
    kinds = [s["metadata"]["subscription_type"] for s in fake.delivered]
    assert len(kinds) == 2 * len(sends) and len(set(kinds)) == len(sends)
    assert len(stored_event_rows(settings.db_path)) == len(sends)


# -- the rest of Twitch's chat notices ----------------------------------------------------------

GIFTER = FakeChatUser("7100", "kindsoul", "KindSoul")
SOURCE = FakeChatUser("7200", "partnerchannel", "PartnerChannel")
_ORIGINAL_GIFTER = {"gifter_is_anonymous": False, "gifter_user_id": GIFTER.id, "gifter_user_login": GIFTER.login,
                    "gifter_user_name": GIFTER.display_name}  # fmt: skip
# notice type, its details, the message, extra notice fields -> the stored line, the card's reaction, what is said
OTHER_NOTICES = [
    ("pay_it_forward", _ORIGINAL_GIFTER, "", {}, "*paid forward the gift sub from KindSoul*",
     "{user} paid it forward for {detail}!", "Viewer paid it forward for KindSoul!"),
    ("gift_paid_upgrade", _ORIGINAL_GIFTER, "", {}, "*kept the gift sub from KindSoul going*",
     "Thanks for staying on, {user}!", "Thanks for staying on, Viewer!"),
    ("prime_paid_upgrade", {"sub_tier": "2000"}, "", {}, "*upgraded from Prime to a paid sub (tier 2)*",
     "Tier {tier}, {user}!", "Tier 2, Viewer!"),
    ("announcement", {"color": "PURPLE"}, "Giveaway at the top of the hour", {}, '*announced: "Giveaway at the top of the hour"*',
     "Noted: {message}", "Noted: Giveaway at the top of the hour"),
    ("bits_badge_tier", {"tier": 1000}, "", {}, "*unlocked the 1000 bits badge*",
     "{user} hit the {bits} badge!", "Viewer hit the 1000 badge!"),
    ("charity_donation", {"charity_name": "Forest Trust", "amount": {"value": 500, "decimal_place": 2, "currency": "USD"}},
     "", {}, "*donated 5.00 USD to Forest Trust*", "{user} donated {detail}!", "Viewer donated 5.00 USD to Forest Trust!"),
    ("watch_streak", {"streak_count": 7, "channel_points_awarded": 450}, "seven!", {}, '*watched 7 streams in a row: "seven!"*',
     "{count} in a row, {user}!", "7 in a row, Viewer!"),
    ("shared_chat_sub", {"sub_tier": "1000", "is_prime": True, "duration_months": 1}, "", {"source": SOURCE},
     "*subscribed in PartnerChannel (shared chat)*", "{user} subbed over at {detail}!", "Viewer subbed over at PartnerChannel!"),
    ("shared_chat_raid", {"user_id": RAIDER.id, "user_login": RAIDER.login, "user_name": RAIDER.display_name,
                          "viewer_count": 40, "profile_image_url": ""}, "", {"source": SOURCE},
     "*raided PartnerChannel with 40 viewers (shared chat)*", "{from_channel} raided {detail} with {viewers}!",
     "BigStreamer raided PartnerChannel with 40!"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("notice", "details", "text", "extra", "stored", "reaction", "said"),
    OTHER_NOTICES,
    ids=[n[0] for n in OTHER_NOTICES],
)
async def test_each_other_chat_notice_is_stored_as_an_event_line_and_the_card_can_react_to_it(
    fake: FakeTwitch,
    twitch_settings: TwitchSettings,
    notice: str,
    details: dict[str, object],
    text: str,
    extra: dict[str, object],
    stored: str,
    reaction: str,
    said: str,
) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    async with managed(settings, ScriptedBackend()) as manager, running(settings, manager) as adapter:
        await fake.notice(CHANNEL.id, VIEWER, notice, details, text=text, **extra)  # default card: stored, not said
        await until(lambda: stored_event_rows(settings.db_path))
        await settled(adapter)
        card = manager.personas.get("pip")
        assert card is not None and card.reactions.for_kind(notice) is None
        setattr(card.reactions, notice, Reaction(template=reaction))
        await fake.notice(CHANNEL.id, VIEWER, notice, details, text=text, **extra)
        await until(lambda: fake.chat_messages)
        await settled(adapter)
    assert [m.message for m in fake.chat_messages] == [said]
    assert [line for _, line, _ in stored_event_rows(settings.db_path)] == [stored, stored]


async def test_a_raid_notice_without_its_raid_object_is_logged_not_dropped_silently(
    fake: FakeTwitch, twitch_settings: TwitchSettings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    caplog.set_level(logging.INFO, logger="bot.twitch.adapter")
    async with managed(settings, ScriptedBackend()) as manager, running(settings, manager) as adapter:
        assert await fake.notice(CHANNEL.id, RAIDER, "raid", None) == 1
        await fake.notice(CHANNEL.id, VIEWER, "unraid", {})
        await fake.sub(CHANNEL.id, VIEWER)  # the next notice still works
        await until(lambda: fake.chat_messages)
        await settled(adapter)
    logged = [r.getMessage() for r in caplog.records]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("raid" in line and "null" in line and "BigStreamer" in line for line in warned), logged
    assert any("unraid" in line for line in logged), logged
    assert [text for _, text, _ in stored_event_rows(settings.db_path)] == ["*subscribed (tier 1)*"]


# -- payloads twitchio cannot parse -------------------------------------------------------------


async def test_payloads_twitchio_cannot_parse_are_read_anyway_and_logged_once_per_kind(
    fake: FakeTwitch, twitch_settings: TwitchSettings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    resub = {"cumulative_months": 5, "duration_months": 1, "streak_months": None, "sub_tier": "1000", "is_gift": False}
    captured_2023 = fake.notice_body(
        CHANNEL.id, VIEWER, "sub", {"sub_tier": "1000", "is_prime": False, "duration_months": 1}
    )
    for key in [
        k for k in captured_2023 if k.startswith(("shared_chat_", "source_")) or k in ("watch_streak", "is_source_only")
    ]:
        del captured_2023[key]
    no_message = fake.notice_body(CHANNEL.id, MOD, "sub", {"sub_tier": "2000", "is_prime": False, "duration_months": 1})
    no_message["message"] = None
    no_viewers = fake.notice_body(CHANNEL.id, RAIDER, "raid", {"user_id": RAIDER.id, "user_login": RAIDER.login})
    caplog.set_level(logging.INFO)
    async with managed(settings, ScriptedBackend()) as manager, running(settings, manager) as adapter:
        for event in (
            captured_2023,
            dict(captured_2023, message_id="second-2023-sub"),
            no_message,
            no_viewers,
            no_viewers,
        ):
            await fake.notify("channel.chat.notification", CHANNEL.id, event)
        await fake.notice(CHANNEL.id, VIEWER, "resub", resub, text="five months!")  # no is_prime
        await until(lambda: len(stored_event_rows(settings.db_path)) == 4)
        await settled(adapter)
    assert [(name, text) for name, text, _ in stored_event_rows(settings.db_path)] == [
        ("Viewer", "*subscribed (tier 1)*"),
        ("Viewer", "*subscribed (tier 1)*"),
        ("ModPerson", "*subscribed (tier 2)*"),
        ("Viewer", '*resubscribed for 5 months: "five months!"*'),
    ]
    ours = [r for r in caplog.records if r.name == "bot.twitch.adapter" and "could not" in r.getMessage()]
    read_anyway = [r.getMessage() for r in ours if r.levelno == logging.WARNING]
    lost = [r.getMessage() for r in ours if r.levelno == logging.ERROR]
    assert len(read_anyway) == 2, read_anyway  # the sub (three of them) and the resub, once each
    assert "channel.chat.notification (sub)" in read_anyway[0] and "KeyError" in read_anyway[0]
    assert "(resub)" in read_anyway[1] and "is_prime" in read_anyway[1]
    assert len(lost) == 1 and "(raid)" in lost[0] and "KeyError" in lost[0]  # twice sent, once said
    assert not [r for r in caplog.records if r.levelno == logging.CRITICAL]  # twitchio's own cry never comes


# -- revocations --------------------------------------------------------------------------------


async def test_a_revoked_subscription_is_logged_dropped_and_made_again_where_it_can_be(
    fake: FakeTwitch, twitch_settings: TwitchSettings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    store_broadcaster_token(settings, fake, BROADCASTER_SCOPES)
    caplog.set_level(logging.INFO, logger="bot.twitch.adapter")
    async with managed(settings, ScriptedBackend()) as manager, running(settings, manager) as adapter:
        on = adapter.events_on[CHANNEL.id]
        assert await fake.revoke("stream.online", CHANNEL.id, "user_removed") == 1
        assert await fake.revoke("channel.follow", CHANNEL.id, "version_removed") == 1
        await until(lambda: "stream online" not in on and "follows" not in on)
        # The broadcaster withdrew consent and gave it again: the cheer subscription can be made anew.
        assert await fake.revoke("channel.cheer", CHANNEL.id, "authorization_revoked") == 1
        await until(
            lambda: any(s.type == "channel.cheer" and s.status == "enabled" for s in fake.subscriptions.values())
        )
        await until(lambda: "cheers" in on)
        await fake.cheer(CHANNEL.id, VIEWER, 100)
        await until(lambda: fake.chat_messages)
        await settled(adapter)
        enabled = sorted(s.type for s in fake.subscriptions.values() if s.status == "enabled")
    assert "stream.online" not in enabled and "channel.follow" not in enabled and "channel.cheer" in enabled
    assert "stream online" not in on and "follows" not in on
    assert [m.message for m in fake.chat_messages] == ["Thank you for the 100 bits, Viewer!"]
    logged = [r.getMessage() for r in caplog.records]
    for label, reason in (
        ("stream online", "user_removed"),
        ("follows", "version_removed"),
        ("cheers", "authorization_revoked"),
    ):
        assert any(f"revoked the {label} subscription" in line and reason in line for line in logged), logged
    created = [r for r in fake.requests if r.method == "POST" and r.path == "/helix/eventsub/subscriptions"]
    assert [r.body["type"] for r in created].count("channel.cheer") == 2
    assert [r.body["type"] for r in created].count("stream.online") == 1  # an account that is gone is not asked again


# -- the fake says what Twitch says -------------------------------------------------------------

DASHED_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


async def test_the_fake_sends_events_shaped_as_twitch_sends_them_and_twitchio_reads_them(
    fake: FakeTwitch, twitch_settings: TwitchSettings
) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    store_broadcaster_token(settings, fake, BROADCASTER_SCOPES)
    async with managed(settings, ScriptedBackend()) as manager, running(settings, manager) as adapter:
        await fake.sub(CHANNEL.id, VIEWER, prime=True)
        await fake.resub(CHANNEL.id, MOD, 12, "Cheer100 a year with @Pip already")
        await fake.community_gift(CHANNEL.id, RAIDER, [VIEWER], gifter_total=41)
        await fake.community_gift(CHANNEL.id, None, [MOD])
        await fake.cheer(CHANNEL.id, None, 100)
        await fake.redemption(CHANNEL.id, VIEWER, "Hydrate", "water!")
        await fake.stream_offline(CHANNEL.id, with_id=False)
        await fake.revoke("stream.online", CHANNEL.id, "user_removed")
        await until(lambda: len(stored_event_rows(settings.db_path)) == 9)
        await settled(adapter)
    envelopes = fake.delivered
    assert all(DASHED_UUID.fullmatch(e["metadata"]["message_id"]) for e in envelopes)
    events = [e["payload"]["event"] for e in envelopes if e["metadata"]["message_type"] == "notification"]
    notices = {(n["notice_type"], n["chatter_user_name"]): n for n in events if "notice_type" in n}
    assert all(DASHED_UUID.fullmatch(n["message_id"]) for n in notices.values())
    assert notices["sub", "Viewer"]["sub"] == {"sub_tier": "1000", "is_prime": True, "duration_months": 1}
    resub_parts = notices["resub", "ModPerson"]["message"]["fragments"]
    assert [f["type"] for f in resub_parts] == ["cheermote", "text", "mention", "text"]
    assert notices["community_sub_gift", "BigStreamer"]["community_sub_gift"]["cumulative_total"] == 41
    anonymous = notices["community_sub_gift", None]
    assert anonymous["chatter_is_anonymous"] and anonymous["chatter_user_id"] is None
    assert anonymous["community_sub_gift"]["cumulative_total"] is None
    cheer = next(e for e in events if "bits" in e)
    assert cheer["is_anonymous"] and cheer["user_id"] is None
    assert next(e for e in events if "reward" in e)["reward"]["cost"] == 500
    assert "id" not in events[-1]  # stream.offline as twitch-cli sends it
    assert [e["metadata"]["message_type"] for e in envelopes][-1] == "revocation"
    texts = [text for _, text, _ in stored_event_rows(settings.db_path)]
    assert texts[:2] == ["*subscribed (Prime)*", '*resubscribed for 12 months: "Cheer100 a year with @Pip already"*']
    assert "*ended the stream*" in texts and "stream online" not in adapter.events_on[CHANNEL.id]


async def test_a_revoked_chat_subscription_is_made_again_and_one_twitch_refuses_is_logged_with_what_to_do(
    fake: FakeTwitch, twitch_settings: TwitchSettings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    broadcaster = store_broadcaster_token(settings, fake, BROADCASTER_SCOPES)
    caplog.set_level(logging.INFO, logger="bot.twitch.adapter")
    async with managed(settings, ScriptedBackend(["Still here!"])) as manager, running(settings, manager) as adapter:
        assert await fake.revoke("channel.chat.message", CHANNEL.id, "authorization_revoked") == 1
        await until(lambda: len(fake.chat_subscriptions(CHANNEL.id)) == 1 and "chat in #streamer again" in caplog.text)
        await fake.chat(CHANNEL.id, VIEWER, "pip, are you still there?")
        await until(lambda: [m.message for m in fake.chat_messages] == ["Still here!"])
        # The streamer really withdrew consent: the broadcaster's token is dead, so Twitch refuses.
        fake.tokens.pop(broadcaster.access_token)
        assert await fake.revoke("channel.cheer", CHANNEL.id, "authorization_revoked") == 1
        await until(lambda: "no cheers" in caplog.text)
        await settled(adapter)
        on = adapter.events_on[CHANNEL.id]
    assert "cheers" not in on and "subs, gifts and raids" in on
    refused = next(r.getMessage() for r in caplog.records if "no cheers" in r.getMessage())
    assert "costar twitch auth --broadcaster" in refused and broadcaster.access_token not in caplog.text
