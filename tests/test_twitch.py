"""The Twitch adapter: the real twitchio 3 client against a local fake Twitch (tests/fake_twitch.py)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import io
import json
import logging
import sqlite3
import stat
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path

import pytest
import pytest_asyncio
import twitchio.eventsub.websockets
import twitchio.http

from bot.app import build_manager, close_manager, run
from bot.twitch.adapter import TwitchAdapter
from bot.twitch.auth import StoredToken, TokenStore, authorize_device
from bot.twitch.limits import twitch_safe
from engine.backends.scripted import ScriptedBackend
from engine.base.clock import Clock, MonotonicClock, ScaledClock
from engine.flow.ratelimit import most_in_any_window
from engine.flow.scheduler import Outcome
from engine.manager import ConversationManager
from engine.moderation.normalize import normalise_text
from engine.observability.redact import REDACTED, SecretRedactor, install_secret_redaction
from engine.prompting.tokens import ApproxTokenCounter
from engine.settings import Settings
from tests.fake_twitch import FakeChatUser, FakeTwitch, badge
from tests.fault_storage import locked_by_another_program
from tests.one_way_in import record_one_way_in

pytestmark = pytest.mark.timeout(120)

CHANNEL = FakeChatUser("2000", "streamer", "Streamer")
VIEWER = FakeChatUser("3000", "viewer", "Viewer")
MOD = FakeChatUser("4000", "modperson", "ModPerson")
TwitchSettings = Callable[..., Settings]


@pytest_asyncio.fixture(loop_scope="function")  # the server must live on the test's own loop
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeTwitch]:
    server = await FakeTwitch(send_limit=20).start()
    server.add_user(CHANNEL.id, CHANNEL.login, CHANNEL.display_name)
    # The seams twitchio offers for pointing it somewhere else (see docs/twitch.md); only tests touch them.
    monkeypatch.setattr(twitchio.http.Route, "BASE", server.helix_url)
    monkeypatch.setattr(twitchio.http.Route, "ID_BASE", server.id_url)
    monkeypatch.setattr(twitchio.eventsub.websockets, "WSS", server.ws_url)
    yield server
    await server.close()


@pytest.fixture
def twitch_settings(make_settings: Callable[..., Settings], fake: FakeTwitch) -> TwitchSettings:
    """``twitch_settings(**twitch)``: the fake's app credentials and the streamer's channel, plus overrides."""

    def make(
        *, memory: dict[str, object] | None = None, backend: dict[str, object] | None = None, **twitch: object
    ) -> Settings:
        values = {"client_id": fake.client_id, "client_secret": fake.client_secret, "channels": CHANNEL.login, **twitch}
        return make_settings(twitch=values, memory=memory or {}, backend=backend or {})

    return make


def store_bot_token(settings: Settings, fake: FakeTwitch, *, expires_in: int = 14_400) -> StoredToken:
    access, refresh = fake.issue_user_token(expires_in=expires_in)
    token = StoredToken(fake.bot.id, fake.bot.login, access, refresh)
    TokenStore(settings.core.data_dir / "twitch_tokens.json").save(token)
    return token


def write_token_file(settings: Settings, token: StoredToken) -> None:
    """A token file as an earlier run left it (not through TokenStore, which would register its values)."""
    path = settings.core.data_dir / "twitch_tokens.json"
    path.write_text(json.dumps(dataclasses.asdict(token)))
    path.chmod(0o600)


@contextlib.asynccontextmanager
async def managed(settings: Settings, backend: ScriptedBackend) -> AsyncIterator[ConversationManager]:
    manager = await build_manager(settings, backend=backend, counter=ApproxTokenCounter())
    try:
        yield manager
    finally:
        await close_manager(manager)


@contextlib.asynccontextmanager
async def running(
    settings: Settings, manager: ConversationManager, clock: Clock | None = None
) -> AsyncIterator[TwitchAdapter]:
    adapter = TwitchAdapter(settings, manager, clock=clock or MonotonicClock())
    task = asyncio.create_task(adapter.start())
    ready = asyncio.create_task(adapter.ready.wait())
    await asyncio.wait({task, ready}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()  # raises the start-up error
    try:
        yield adapter
    finally:
        await adapter.close()
        await asyncio.wait_for(task, 10)


async def until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


# -- connecting ---------------------------------------------------------------------------------


async def test_bot_validates_its_token_and_subscribes_to_chat_as_itself(
    fake: FakeTwitch, twitch_settings: TwitchSettings
) -> None:
    settings = twitch_settings()
    token = store_bot_token(settings, fake)
    async with managed(settings, ScriptedBackend()) as manager, running(settings, manager):
        pass
    paths = [(r.method, r.path) for r in fake.requests]
    assert ("GET", "/oauth2/validate") in paths
    users = next(r for r in fake.requests if r.path == "/helix/users")
    assert users.query == {"login": CHANNEL.login}
    subscribe = next(r for r in fake.requests if r.path == "/helix/eventsub/subscriptions")
    assert subscribe.body["type"] == "channel.chat.message"
    assert subscribe.body["condition"] == {"broadcaster_user_id": CHANNEL.id, "user_id": fake.bot.id}
    assert subscribe.authorization == f"Bearer {token.access_token}"


async def test_public_app_without_a_secret_runs_on_the_bots_user_token(
    fake: FakeTwitch, twitch_settings: TwitchSettings
) -> None:
    settings = twitch_settings(client_secret=None)
    store_bot_token(settings, fake)
    async with managed(settings, ScriptedBackend(["hello"])) as manager, running(settings, manager):
        await fake.chat(CHANNEL.id, VIEWER, "hi pip")
        await until(lambda: fake.chat_messages)
    assert not any(r.query.get("grant_type") == "client_credentials" for r in fake.requests)
    assert fake.chat_messages[0].message == "hello"


async def test_expiring_token_is_refreshed_and_stored_so_a_restart_needs_no_login(
    fake: FakeTwitch, twitch_settings: TwitchSettings
) -> None:
    settings = twitch_settings()
    old = store_bot_token(settings, fake, expires_in=600)  # twitchio refreshes tokens with < 1 h left
    async with managed(settings, ScriptedBackend()) as manager:
        async with running(settings, manager):
            pass
        stored = TokenStore(settings.core.data_dir / "twitch_tokens.json").load()
        assert stored.access_token != old.access_token
        assert stored.access_token in fake.tokens
        async with running(settings, manager):  # the restart uses the stored pair
            pass
    assert not any(r.path == "/oauth2/device" for r in fake.requests)


async def test_device_code_login_stores_a_private_token_file(fake: FakeTwitch, twitch_settings: TwitchSettings) -> None:
    settings = twitch_settings()
    said: list[str] = []
    token = await authorize_device(settings, announce=said.append)
    path = settings.core.data_dir / "twitch_tokens.json"
    assert TokenStore(path).load() == token
    assert token.user_id == fake.bot.id
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "ABCD-EFGH" in said[0]


async def test_a_refused_token_stops_twitch_with_one_clear_line_that_quotes_no_token(
    fake: FakeTwitch, twitch_settings: TwitchSettings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = twitch_settings(backend={"kind": "scripted"})
    revoked = StoredToken(fake.bot.id, fake.bot.login, "user-revoked-0123456789", "refresh-revoked-0123456789")
    write_token_file(settings, revoked)  # neither is known to Twitch: validation and refresh both fail
    caplog.set_level(logging.INFO)  # no redaction installed: the words themselves must be clean
    assert await run(settings) == 1
    everything = "\n".join(caplog.text.splitlines())
    assert revoked.access_token not in everything and revoked.refresh_token not in everything
    stopped = [r for r in caplog.records if r.getMessage().startswith("adapter stopped")]
    assert [r.getMessage() for r in stopped] == [
        "adapter stopped: Twitch refused the bot's token while connecting: run `costar twitch auth` again"
    ]
    assert stopped[0].exc_info is None


async def test_token_values_from_the_file_and_from_refreshes_are_redacted_from_logs(
    fake: FakeTwitch, twitch_settings: TwitchSettings
) -> None:
    settings = twitch_settings()
    access, refresh = fake.issue_user_token(expires_in=600)  # twitchio refreshes it at start
    write_token_file(settings, StoredToken(fake.bot.id, fake.bot.login, access, refresh))
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    logging.getLogger().addHandler(handler)
    redactor = install_secret_redaction(settings)
    try:
        async with managed(settings, ScriptedBackend()) as manager, running(settings, manager):
            # Read the file as a person would: loading it through TokenStore would register it again.
            refreshed = StoredToken(**json.loads((settings.core.data_dir / "twitch_tokens.json").read_text()))
            assert refreshed.access_token != access
            logging.getLogger("twitchio.test").error(
                "Request failed: %s %s %s", access, refresh, refreshed.access_token
            )
    finally:
        logging.getLogger().removeHandler(handler)
    assert lines.getvalue().count(REDACTED) == 3, lines.getvalue()
    assert access not in lines.getvalue() and refreshed.access_token not in lines.getvalue()
    assert redactor.redact(f"token={refreshed.refresh_token}") == f"token={REDACTED}"


def test_a_token_saved_after_a_refresh_is_redacted_before_it_is_ever_read_back(tmp_path: Path) -> None:
    redactor = SecretRedactor([])
    TokenStore(tmp_path / "twitch_tokens.json").save(StoredToken("1", "bot", "access-new-7fe31c", "refresh-new-9ab2d4"))
    assert redactor.redact("url?refresh_token=refresh-new-9ab2d4 token access-new-7fe31c") == (
        f"url?refresh_token={REDACTED} token {REDACTED}"
    )


def test_a_stale_or_planted_temporary_file_never_exposes_the_token(tmp_path: Path) -> None:
    path = tmp_path / "twitch_tokens.json"
    stale = tmp_path / "twitch_tokens.tmp"
    stale.write_text("left by a crash")
    stale.chmod(0o644)
    TokenStore(path).save(StoredToken("1", "bot", "access-0123456789", "refresh-0123456789"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    victim = tmp_path / "elsewhere.txt"
    victim.write_text("not yours")
    stale.symlink_to(victim)  # someone plants a link where the next save writes
    TokenStore(path).save(StoredToken("1", "bot", "access-abcdefghij", "refresh-abcdefghij"))
    assert victim.read_text() == "not yours"
    assert not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert TokenStore(path).load().access_token == "access-abcdefghij"


# -- answering ----------------------------------------------------------------------------------


async def test_line_naming_the_character_gets_a_threaded_reply(
    fake: FakeTwitch, twitch_settings: TwitchSettings
) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    async with managed(settings, ScriptedBackend(["Ahoy there!"])) as manager, running(settings, manager):
        asked = await fake.chat(CHANNEL.id, VIEWER, "hey Pip, how are you?")
        await until(lambda: fake.chat_messages)
    sent = fake.chat_messages[0]
    assert (sent.message, sent.reply_parent_message_id, sent.sender_id) == ("Ahoy there!", asked, fake.bot.id)


async def test_every_line_goes_in_through_hear_and_the_sent_reply_is_linked(
    fake: FakeTwitch, twitch_settings: TwitchSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = record_one_way_in(monkeypatch)
    settings = twitch_settings()
    store_bot_token(settings, fake)
    async with managed(settings, ScriptedBackend(["Ahoy there!"])) as manager, running(settings, manager):
        lurking = await fake.chat(CHANNEL.id, VIEWER, "just watching")
        asked = await fake.chat(CHANNEL.id, VIEWER, "hey Pip, how are you?")
        await until(lambda: calls.linked)
    assert calls.heard == [lurking, asked]
    assert calls.linked == [fake.chat_messages[0].message_id]
    assert calls.taken == [("twitch", lurking), ("twitch", asked)], "every line through the one chat session"
    assert calls.answered == [asked], "answered through the session's one reply path"


async def test_reply_to_the_bots_message_addresses_the_bot(fake: FakeTwitch, twitch_settings: TwitchSettings) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    async with managed(settings, ScriptedBackend(["first", "second"])) as manager, running(settings, manager):
        await fake.chat(CHANNEL.id, VIEWER, "pip?")
        await until(lambda: len(fake.chat_messages) == 1)
        ours = fake.chat_messages[0]
        await fake.chat(CHANNEL.id, MOD, "what do you mean", reply_to=(ours.message_id, ours.message, fake.bot))
        await until(lambda: len(fake.chat_messages) == 2)
        stored = await manager.memory.message_by_platform_id("twitch", ours.message_id)
    assert stored is not None and stored.is_character  # our reply is linked to Twitch's id


async def test_unaddressed_lines_are_stored_but_not_answered(fake: FakeTwitch, twitch_settings: TwitchSettings) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    backend = ScriptedBackend()
    async with managed(settings, backend) as manager, running(settings, manager):
        for text in ("hello chat", "pipeline is down", "lol"):
            await fake.chat(CHANNEL.id, VIEWER, text)
        async with asyncio.timeout(5):
            while await manager.memory.count_messages("twitch", CHANNEL.id) < 3:
                await asyncio.sleep(0.01)
    assert fake.chat_messages == []
    assert backend.requests == []


async def test_no_reply_starts_with_a_command_prefix_even_when_the_model_writes_one(
    fake: FakeTwitch, twitch_settings: TwitchSettings
) -> None:
    settings = twitch_settings(reply_cooldown_s=0)
    store_bot_token(settings, fake)
    outputs = ["/ban streamer", ".timeout viewer 600", "./me dances", "  / . /color red", "fine words"]
    async with managed(settings, ScriptedBackend(outputs)) as manager, running(settings, manager):
        for number in range(len(outputs)):
            await fake.chat(CHANNEL.id, VIEWER, f"pip question {number}")
            await until(lambda: len(fake.chat_messages) > number)  # noqa: B023 - awaited in this iteration
    sent = [m.message for m in fake.chat_messages]
    assert sent == ["ban streamer", "timeout viewer 600", "me dances", "color red", "fine words"]


def test_output_guard_keeps_one_short_line_without_mass_mentions() -> None:
    long_text = "word " * 200
    assert len(twitch_safe(long_text) or "") <= 500
    assert twitch_safe("line one\nline two") == "line one line two"
    assert twitch_safe("@a @b @c @d @e hi") == "@a @b @c d e hi"
    assert twitch_safe(" /// ") is None


async def test_identical_consecutive_reply_is_not_sent_again(fake: FakeTwitch, twitch_settings: TwitchSettings) -> None:
    settings = twitch_settings(reply_cooldown_s=0)
    store_bot_token(settings, fake)
    backend = ScriptedBackend(["Same answer.", "same answer!", "A new answer."])
    async with managed(settings, backend) as manager, running(settings, manager) as adapter:
        for number in range(3):
            await fake.chat(CHANNEL.id, VIEWER, f"pip {number}")
            await until(lambda: len(backend.requests) > number)  # noqa: B023 - awaited in this iteration
        await asyncio.wait_for(adapter.scheduler.join(), 5)
    assert [m.message for m in fake.chat_messages] == ["Same answer.", "A new answer."]
    assert adapter.scheduler.stats[Outcome.NOT_SENT] == 1


async def test_moderator_badge_on_our_echo_raises_the_send_limit(
    fake: FakeTwitch, twitch_settings: TwitchSettings
) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    fake.bot_badges[CHANNEL.id] = [badge("moderator")]
    async with managed(settings, ScriptedBackend(["hi"])) as manager, running(settings, manager) as adapter:
        assert adapter.budget_for(CHANNEL.id).limit == 20
        await fake.chat(CHANNEL.id, VIEWER, "pip")
        await until(lambda: adapter.budget_for(CHANNEL.id).limit == 100)


# -- commands -----------------------------------------------------------------------------------


async def test_non_moderator_cannot_switch_persona(fake: FakeTwitch, twitch_settings: TwitchSettings) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    async with managed(settings, ScriptedBackend()) as manager, running(settings, manager):
        await fake.chat(CHANNEL.id, VIEWER, "!persona captain-brine")
        async with asyncio.timeout(5):
            while await manager.memory.count_messages("twitch", CHANNEL.id) < 1:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        persona = await manager.persona_for("twitch", CHANNEL.id)
    assert persona.persona_id == "pip"
    assert fake.chat_messages == []


async def test_moderator_switches_persona_and_the_new_name_is_answered(
    fake: FakeTwitch, twitch_settings: TwitchSettings
) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    async with managed(settings, ScriptedBackend(["Arr!"])) as manager, running(settings, manager):
        await fake.chat(CHANNEL.id, MOD, "!persona captain-brine", badges=[badge("moderator")])
        await until(lambda: len(fake.chat_messages) == 1)
        assert (await manager.persona_for("twitch", CHANNEL.id)).persona_id == "captain-brine"
        await fake.chat(CHANNEL.id, VIEWER, "captain brine, where is the treasure?")
        await until(lambda: len(fake.chat_messages) == 2)
    assert "Captain Brine" in fake.chat_messages[0].message
    assert fake.chat_messages[1].message == "Arr!"


async def test_persona_command_shows_the_current_one_once_per_cooldown(
    fake: FakeTwitch, twitch_settings: TwitchSettings
) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    async with managed(settings, ScriptedBackend()) as manager, running(settings, manager) as adapter:
        for _ in range(3):
            await fake.chat(CHANNEL.id, VIEWER, "!persona")
        await until(lambda: len(fake.chat_messages) == 1)
        await asyncio.sleep(0.2)
        assert adapter.scheduler.stats[Outcome.QUEUED] == 0  # commands never reach the reply queue
    assert [m.message for m in fake.chat_messages] == ["Current persona: Pip."]


async def test_forgetme_deletes_what_the_chatter_said(fake: FakeTwitch, twitch_settings: TwitchSettings) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    async with managed(settings, ScriptedBackend()) as manager, running(settings, manager):
        await fake.chat(CHANNEL.id, VIEWER, "my secret is 42")
        await fake.chat(CHANNEL.id, VIEWER, "!forgetme")
        await until(lambda: len(fake.chat_messages) == 1)
        assert await manager.memory.get_user("twitch", VIEWER.id) is None
        assert await manager.memory.count_messages("twitch", CHANNEL.id) == 0


async def test_a_raid_of_forgetme_is_capped_per_channel_and_every_forget_runs(
    fake: FakeTwitch, twitch_settings: TwitchSettings
) -> None:
    clock = ScaledClock(30.0)  # a minute of bot time lasts 2 s of the test
    fake.clock = clock
    settings = twitch_settings(forgets_per_minute=2, command_cooldown_s=0)
    store_bot_token(settings, fake)
    raiders = [FakeChatUser(f"70{n}", f"raider{n}", f"Raider{n}") for n in range(5)]
    async with managed(settings, ScriptedBackend()) as manager, running(settings, manager, clock):
        for raider in raiders:
            await fake.chat(CHANNEL.id, raider, "my secret is 42")
        for raider in raiders:
            await fake.chat(CHANNEL.id, raider, "!forgetme")
        await until(lambda: len(fake.chat_messages) == 5, timeout=30)
        for raider in raiders:
            assert await manager.memory.get_user("twitch", raider.id) is None
    confirmed = [m.received_at for m in fake.chat_messages]
    assert most_in_any_window(confirmed, window_s=60.0) <= 2  # the rest waited their turn
    assert max(confirmed) - min(confirmed) >= 60.0


async def test_a_redelivered_line_is_stored_once_and_answered_once(
    fake: FakeTwitch, twitch_settings: TwitchSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = twitch_settings(command_cooldown_s=0)
    store_bot_token(settings, fake)
    async with managed(settings, ScriptedBackend(default="hello!")) as manager, running(settings, manager) as adapter:
        forgets: list[str] = []
        forget = manager.forget

        async def counted_forget(platform: str, user_id: str) -> object:
            forgets.append(user_id)
            return await forget(platform, user_id)

        monkeypatch.setattr(manager, "forget", counted_forget)
        for _ in range(2):  # EventSub delivers at least once: the same message id twice
            await fake.chat(CHANNEL.id, VIEWER, "hi pip", message_id="eventsub-1")
        await until(lambda: fake.chat_messages)
        await asyncio.sleep(0.3)
        await asyncio.wait_for(adapter.scheduler.join(), 10)
        await fake.chat(CHANNEL.id, MOD, "!forgetme", message_id="eventsub-2")
        await fake.chat(CHANNEL.id, MOD, "!forgetme", message_id="eventsub-2")
        await until(lambda: len(fake.chat_messages) == 2)
        await asyncio.sleep(0.3)
        viewer = await manager.memory.get_user("twitch", VIEWER.id)
        assert viewer is not None and viewer.message_count == 1
    assert forgets == [MOD.id]  # a redelivered command is not run again
    assert [m.message for m in fake.chat_messages] == [
        "hello!",
        "@ModPerson done: forgot 1 messages and 0 notes; I no longer remember anything you said.",
    ]
    with sqlite3.connect(settings.db_path) as db:
        assert db.execute("SELECT COUNT(*) FROM messages WHERE platform_message_id = 'eventsub-1'").fetchone() == (1,)


# -- connection faults --------------------------------------------------------------------------


def stored_counts(db_path: Path) -> Counter[str]:
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT platform_message_id FROM messages WHERE is_character = 0").fetchall()
    return Counter(row[0] for row in rows)


async def test_eventsub_cut_or_moved_mid_session_loses_no_line_and_answers_none_twice(
    fake: FakeTwitch, twitch_settings: TwitchSettings
) -> None:
    """twitchio reconnects a dropped socket and resubscribes; it follows session_reconnect's URL."""
    settings = twitch_settings(reply_cooldown_s=0, command_cooldown_s=0)
    store_bot_token(settings, fake)
    backend = ScriptedBackend([f"Answer number {n}." for n in range(20)], delay_s=0.2)
    heard: list[str] = []
    asked: list[str] = []

    async def say(text: str, *, addressed: bool, message_id: str | None = None) -> None:
        sent = await fake.chat(CHANNEL.id, VIEWER, text, message_id=message_id)
        heard.append(sent)
        if addressed:
            asked.append(sent)

    async def resubscribed(welcomes: int) -> None:
        await until(lambda: fake.welcomes == welcomes and len(fake.chat_subscriptions(CHANNEL.id)) == 1)

    async with managed(settings, backend) as manager, running(settings, manager) as adapter:
        for n in range(3):
            await say(f"chatting away {n}", addressed=False)
            await say(f"pip, question {n}?", addressed=True)
        await until(lambda: len(stored_counts(settings.db_path)) == len(heard))
        await say("pip, one more before the cut?", addressed=True, message_id="before-cut")
        await fake.drop_eventsub()  # that reply is still being written: it finishes over Helix
        await resubscribed(welcomes=2)
        await say("pip, one more before the cut?", addressed=True, message_id="before-cut")  # at least once
        heard.pop(), asked.pop()  # the same line, delivered twice
        for n in range(3):
            await say(f"pip, after the cut {n}?", addressed=True)
        await fake.ask_to_reconnect()
        await resubscribed(welcomes=3)
        for n in range(3):
            await say(f"after the move {n}", addressed=False)
            await say(f"pip, after the move {n}?", addressed=True)
        await until(lambda: len(fake.chat_messages) == len(asked), timeout=20)
        await asyncio.wait_for(adapter.scheduler.join(), 10)
        await asyncio.sleep(0.3)
    chat_subscriptions = [s for s in fake.subscriptions.values() if s.type == "channel.chat.message"]
    assert fake.welcomes == 3 and len(chat_subscriptions) == 2, "created again after the drop, moved by the reconnect"
    assert stored_counts(settings.db_path) == Counter(heard), "every line stored, none twice"
    answered = Counter(m.reply_parent_message_id for m in fake.chat_messages)
    assert answered == Counter(asked), "every question answered exactly once"


# -- storage faults -----------------------------------------------------------------------------


async def test_a_database_locked_past_the_busy_timeout_loses_no_twitch_line(
    fake: FakeTwitch, twitch_settings: TwitchSettings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = twitch_settings(memory={"busy_timeout_s": 0.2})
    store_bot_token(settings, fake)
    async with managed(settings, ScriptedBackend()) as manager, running(settings, manager):
        await fake.chat(CHANNEL.id, VIEWER, "before the lock")
        await until(lambda: stored_platform_ids(settings.db_path))
        with locked_by_another_program(settings.db_path, seconds=2.0):
            sent = [await fake.chat(CHANNEL.id, VIEWER, f"line {n}") for n in range(40)]
            await asyncio.sleep(1.0)
        await until(lambda: stored_platform_ids(settings.db_path) >= set(sent), timeout=15)
    assert not [r for r in caplog.records if r.name == "bot.twitch.adapter" and r.levelno >= logging.ERROR]


async def test_a_hung_send_gives_up_in_time_and_frees_the_slot_for_the_next_reply(
    fake: FakeTwitch, twitch_settings: TwitchSettings
) -> None:
    """Twitch takes a send and never answers: the bot moves on after TWITCH_SEND_TIMEOUT_S."""
    settings = twitch_settings(send_timeout_s=0.5, reply_cooldown_s=0)
    settings.backend.max_concurrency = 1  # one scheduler slot: a hung send would block every reply
    store_bot_token(settings, fake)
    fake.hang_sends = 1
    backend = ScriptedBackend(["Lost in the void.", "This one arrives."])
    async with managed(settings, backend) as manager, running(settings, manager) as adapter:
        await fake.chat(CHANNEL.id, VIEWER, "pip, first question")
        await until(lambda: fake.hung_sends)
        await fake.chat(CHANNEL.id, MOD, "pip, second question")
        await until(lambda: fake.chat_messages, timeout=5)
        await asyncio.wait_for(adapter.scheduler.join(), 5)
        in_window = adapter.budget_for(CHANNEL.id).in_window()
    assert fake.hung_sends == ["Lost in the void."]
    assert [m.message for m in fake.chat_messages] == ["This one arrives."]
    assert adapter.scheduler.stats[Outcome.NOT_SENT] == 1 and adapter.scheduler.stats[Outcome.REPLIED] == 1
    assert in_window == 2, "the hung send still counts: Twitch may have taken it"


async def test_forgetme_drops_the_chatters_lines_still_waiting_for_an_answer(
    fake: FakeTwitch, twitch_settings: TwitchSettings
) -> None:
    settings = twitch_settings(reply_cooldown_s=300)  # after one answer, their next lines wait in the queue
    store_bot_token(settings, fake)
    async with managed(settings, ScriptedBackend(default="Noted!")) as manager, running(settings, manager) as adapter:
        await fake.chat(CHANNEL.id, VIEWER, "pip, my first secret")
        await until(lambda: len(fake.chat_messages) == 1)
        await fake.chat(CHANNEL.id, VIEWER, "pip, my second secret")
        await fake.chat(CHANNEL.id, VIEWER, "pip, my third secret")
        await until(lambda: adapter.scheduler.queued == 2)
        await fake.chat(CHANNEL.id, VIEWER, "!forgetme")
        await until(lambda: len(fake.chat_messages) == 2)
        queued_after = adapter.scheduler.queued
    assert queued_after == 0 and adapter.scheduler.stats[Outcome.FORGOTTEN] == 2
    assert "no longer remember" in fake.chat_messages[1].message
    assert not any("secret" in text for text in stored_texts(settings.db_path))


def stored_texts(db_path: Path) -> list[str]:
    with sqlite3.connect(db_path) as db:
        return [row[0] for row in db.execute("SELECT text FROM messages")]


# -- a recorded chat flood ----------------------------------------------------------------------

CLOCK_SPEED = 30.0  # bot time runs 30x real time: Twitch's 30 s window lasts 1 s of the test
CHAT_SPEED = 20.0  # the recorded chat is replayed 20x faster than it happened, in bot time
ADDRESS_EVERY = 6


def load_chat(shared_data: Path) -> list[dict[str, str]]:
    with (shared_data / "live-chat-press-briefing.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def addressed_rows(rows: list[dict[str, str]]) -> set[int]:
    """Every Nth line among those nobody else wrote: naming Pip in them cannot make a copypasta."""
    counts = Counter(normalise_text(row["message"]) for row in rows)
    unique = [index for index, row in enumerate(rows) if counts[normalise_text(row["message"])] == 1]
    return set(unique[::ADDRESS_EVERY])


async def replay_chat(fake: FakeTwitch, rows: list[dict[str, str]], addressed: set[int], clock: Clock) -> list[str]:
    start = datetime.fromisoformat(rows[0]["published_at"])
    chatters: dict[str, FakeChatUser] = {}
    message_ids = []
    for index, row in enumerate(rows):
        due = (datetime.fromisoformat(row["published_at"]) - start).total_seconds() / CHAT_SPEED
        if due > clock.now():
            await clock.sleep(due - clock.now())
        chatter = chatters.setdefault(
            row["author"], FakeChatUser(f"u{len(chatters) + 1}", f"user{len(chatters) + 1}", row["author"])
        )
        text = f"Pip, {row['message']}" if index in addressed else row["message"]
        message_ids.append(await fake.chat(CHANNEL.id, chatter, text, message_id=f"csv-{index}"))
    return message_ids


def stored_platform_ids(db_path: Path) -> set[str]:
    with sqlite3.connect(db_path) as db:
        return {row[0] for row in db.execute("SELECT platform_message_id FROM messages WHERE is_character = 0")}


@pytest.mark.slow
async def test_recorded_flood_keeps_twitch_limits_and_loses_no_line(
    fake: FakeTwitch, twitch_settings: TwitchSettings, shared_data: Path
) -> None:
    rows = load_chat(shared_data)
    addressed = addressed_rows(rows)
    clock = ScaledClock(CLOCK_SPEED)
    fake.clock = clock
    settings = twitch_settings()
    store_bot_token(settings, fake)
    # The model tries Twitch commands now and then; none may reach chat as one.
    backend = ScriptedBackend([f"{('/', '.', '')[n % 3]}answer {n}" for n in range(len(rows))])
    final: dict[str, Outcome] = {}
    async with managed(settings, backend) as manager, running(settings, manager, clock) as adapter:
        adapter.scheduler.on_outcome = lambda event, outcome: final.__setitem__(event.message_id, outcome)
        message_ids = await replay_chat(fake, rows, addressed, clock)
        await until(lambda: len(final) >= len(rows), timeout=60)
        await asyncio.wait_for(adapter.scheduler.join(), 30)
    sends = [m.received_at for m in fake.chat_messages]
    outcomes = Counter(final[f"csv-{index}"] for index in addressed)
    print(
        f"\n{len(rows)} lines, {len(addressed)} addressed: {dict(outcomes)}; {len(sends)} sent, "
        f"most in any 30 s: {most_in_any_window(sends)}; all outcomes: {dict(adapter.scheduler.stats)}"
    )
    assert most_in_any_window(sends) <= 20
    assert all(m.is_sent for m in fake.chat_messages)
    # moderated: lines input moderation blocked (shouting, repeats): stored, not answered. queue_full: a
    # reply the bounded queue had no room for while replies were slow (seen in full runs of the suite);
    # the line is still stored, which the last assertion checks.
    assert set(outcomes) <= {Outcome.REPLIED, Outcome.STALE, Outcome.MODERATED, Outcome.QUEUE_FULL}
    assert outcomes[Outcome.REPLIED] > 0
    assert not any(m.message.startswith(("/", ".")) for m in fake.chat_messages)
    assert stored_platform_ids(settings.db_path) >= set(message_ids)
