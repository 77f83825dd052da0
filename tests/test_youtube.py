"""YouTube Live chat: the real google-api-python-client against a local fake YouTube Data API
(tests/fake_youtube.py), the real manager and SQLite file, the scripted backend."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import itertools
import json
import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from google.oauth2.credentials import Credentials

from bot.app import build_manager, close_manager
from bot.youtube.adapter import YouTubeAdapter
from bot.youtube.auth import YouTubeTokenStore
from bot.youtube.quota import INSERT_COST, LIST_COST, QuotaPlan
from bot.youtube.settings import YouTubeSettings
from engine.backends.scripted import ScriptedBackend
from engine.manager import ConversationManager
from engine.observability.redact import SecretRedactor
from engine.prompting.tokens import ApproxTokenCounter
from engine.settings import Settings
from tests.fake_youtube import FakeYouTube, author, message, text_message
from tests.one_way_in import record_one_way_in

REPO = Path(__file__).resolve().parents[1]
VIEWER = author("UC-viewer", "Ava")
OTHER = author("UC-other", "Ben")
MODERATOR = author("UC-mod", "ModMax", moderator=True)
OWNER = author("UC-owner", "Streamer", owner=True)


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeYouTube]:
    server = await FakeYouTube().start()
    try:
        yield server
    finally:
        await server.close()


def youtube_settings(tmp_path: Path, **overrides: object) -> YouTubeSettings:
    # A 3.6 s "stream": the quota plan's pace (a poll every 3 ms, a reply every 18 ms at most) never
    # slows a test; tests of the pace set their own. Reading polls unless a test asks for the stream.
    values: dict[str, object] = {
        "read": "poll",
        "quota_file": tmp_path / "youtube_quota.json",
        "reply_cooldown_s": 0.0,
        "stream_hours": 0.001,
    }
    values.update(overrides)
    return YouTubeSettings.model_validate(values)


@contextlib.asynccontextmanager
async def managed(settings: Settings, backend: ScriptedBackend) -> AsyncIterator[ConversationManager]:
    manager = await build_manager(settings, backend=backend, counter=ApproxTokenCounter())
    try:
        yield manager
    finally:
        await close_manager(manager)


@contextlib.asynccontextmanager
async def running(
    settings: Settings, manager: ConversationManager, fake: FakeYouTube, youtube: YouTubeSettings
) -> AsyncIterator[YouTubeAdapter]:
    adapter = YouTubeAdapter(
        settings,
        manager,
        youtube=youtube,
        api_endpoint=fake.url,
        credentials=Credentials(token="fake-access"),
        stream_channel=fake.stream_channel,
    )
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
        await asyncio.wait_for(task, 15)


async def until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def sent_texts(fake: FakeYouTube) -> list[str]:
    return [item["snippet"]["textMessageDetails"]["messageText"] for item in fake.inserted]


# -- reading and answering ---------------------------------------------------------------------


async def test_a_question_to_the_character_is_answered_through_the_one_chat_session(
    fake: FakeYouTube, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = record_one_way_in(monkeypatch)
    fake.post(text_message("m1", VIEWER, "just watching"))
    fake.post(text_message("m2", VIEWER, "Pip, what is the plan today?"))
    async with (
        managed(settings, ScriptedBackend(["Reading chat, obviously!"])) as manager,
        running(settings, manager, fake, youtube_settings(tmp_path)),
    ):
        await until(lambda: fake.inserted)
        await until(lambda: calls.linked and len(fake.calls("messages.list")) >= 2)
    assert sent_texts(fake) == ["Reading chat, obviously!"]
    assert fake.inserted[0]["snippet"]["liveChatId"] == "live-chat-1"
    assert calls.heard == ["m1", "m2"]
    assert calls.taken == [("youtube", "m1"), ("youtube", "m2")], "every line through the one chat session"
    assert calls.answered == ["m2"] and calls.linked == [fake.inserted[0]["id"]]
    polls = fake.calls("messages.list")
    assert polls[1].query.get("pageToken") == "2", "the next poll follows nextPageToken"


# -- reading over streamList (gRPC) -------------------------------------------------------------


def chat_lines(count: int, first: int = 1) -> list[dict[str, object]]:
    return [text_message(f"s{n}", VIEWER if n % 2 else OTHER, f"line {n}") for n in range(first, first + count)]


async def test_our_own_message_read_back_before_youtube_answers_the_insert_is_not_heard(
    fake: FakeYouTube, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.insert_answer_delay_s = 0.5  # ten polls see the reply in the chat before its id is known
    calls = record_one_way_in(monkeypatch)
    fake.post(text_message("m1", VIEWER, "Pip, what is the plan today?"))
    async with (
        managed(settings, ScriptedBackend(["Reading chat, obviously!"])) as manager,
        running(settings, manager, fake, youtube_settings(tmp_path)),
    ):
        await until(lambda: calls.linked)
        polls = len(fake.calls("messages.list"))
        await until(lambda: len(fake.calls("messages.list")) >= polls + 2)
    assert sent_texts(fake) == ["Reading chat, obviously!"]
    assert calls.heard == ["m1"]


async def test_every_line_arrives_once_over_the_stream_with_the_oauth_token(
    fake: FakeYouTube, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = record_one_way_in(monkeypatch)
    for line in chat_lines(3):
        fake.post(line)
    async with (
        managed(settings, ScriptedBackend()) as manager,
        running(settings, manager, fake, youtube_settings(tmp_path, read="stream")) as adapter,
    ):
        await until(lambda: len(calls.taken) >= 3)
        for line in chat_lines(3, first=4):  # said while the stream is open: pushed, not polled
            fake.post(line)
        await until(lambda: len(calls.taken) >= 6)
        await asyncio.sleep(0.1)  # time for anything doubled to arrive
        stored = await manager.memory.get_user("youtube", "UC-other")
    assert [message_id for _, message_id in calls.taken] == [f"s{n}" for n in range(1, 7)]
    assert stored is not None
    assert fake.calls("messages.list") == [], "nothing was polled"
    assert len(fake.stream_calls) == 1 and fake.stream_calls[0].authorization == "Bearer fake-access"
    assert adapter.streamed_pages >= 2


async def test_a_dropped_stream_resumes_from_the_last_page_token_losing_and_doubling_nothing(
    fake: FakeYouTube, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = record_one_way_in(monkeypatch)
    fake.page_size = 2
    fake.drop_stream_at = 4  # after the pages [s1 s2] and [s3 s4]
    for line in chat_lines(7):
        fake.post(line)
    async with (
        managed(settings, ScriptedBackend()) as manager,
        running(settings, manager, fake, youtube_settings(tmp_path, read="stream")),
    ):
        await until(lambda: len(calls.taken) >= 7)
        await asyncio.sleep(0.1)
    assert [message_id for _, message_id in calls.taken] == [f"s{n}" for n in range(1, 8)]
    assert [call.page_token for call in fake.stream_calls] == ["", "4"], "the second call resumes at the token"
    assert fake.calls("messages.list") == [], "a dropped stream is opened again, not given up"


@pytest.mark.parametrize(
    ("status", "calls_before_polling"),
    [(grpc.StatusCode.UNIMPLEMENTED, 1), (grpc.StatusCode.PERMISSION_DENIED, 1), (grpc.StatusCode.UNAVAILABLE, 3)],
)
async def test_unimplemented_stream_falls_back_to_polling_and_lines_keep_arriving(
    fake: FakeYouTube,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    status: grpc.StatusCode,
    calls_before_polling: int,
) -> None:
    """Refused (UNIMPLEMENTED, PERMISSION_DENIED): polling at once; failing (UNAVAILABLE): after 3 tries."""
    calls = record_one_way_in(monkeypatch)
    fake.refuse_stream = status
    fake.post(text_message("m1", VIEWER, "hello"))
    async with (
        managed(settings, ScriptedBackend()) as manager,
        running(settings, manager, fake, youtube_settings(tmp_path, read="stream")),
    ):
        await until(lambda: calls.taken)
        fake.post(text_message("m2", OTHER, "still here"))
        await until(lambda: len(calls.taken) >= 2)
    assert [message_id for _, message_id in calls.taken] == ["m1", "m2"]
    assert len(fake.stream_calls) == calls_before_polling
    assert fake.calls("messages.list"), "read by polling"
    fallbacks = [r for r in caplog.records if "by polling instead" in r.getMessage()]
    assert len(fallbacks) == 1 and status.name in fallbacks[0].getMessage()


async def test_polls_wait_pollingIntervalMillis(fake: FakeYouTube, settings: Settings, tmp_path: Path) -> None:
    fake.polling_interval_ms = 300
    async with (
        managed(settings, ScriptedBackend()) as manager,
        running(settings, manager, fake, youtube_settings(tmp_path)),
    ):
        await until(lambda: len(fake.calls("messages.list")) >= 3, timeout=10)
    times = [request.at for request in fake.calls("messages.list")]
    assert min(later - earlier for earlier, later in itertools.pairwise(times)) >= 0.28


async def test_a_redelivered_message_is_stored_once_and_answered_once(
    fake: FakeYouTube, settings: Settings, tmp_path: Path
) -> None:
    asked = text_message("m1", VIEWER, "Pip, hello?")
    fake.post(asked)
    fake.post(asked)  # the same message id on a later page
    async with (
        managed(settings, ScriptedBackend(default="hi!")) as manager,
        running(settings, manager, fake, youtube_settings(tmp_path)) as adapter,
    ):
        await until(lambda: fake.inserted)
        await until(lambda: adapter.polls >= 3)
        await asyncio.wait_for(adapter.scheduler.join(), 10)
    assert len(fake.inserted) == 1
    with sqlite3.connect(settings.db_path) as db:
        assert db.execute("SELECT COUNT(*) FROM messages WHERE platform_message_id = 'm1'").fetchone() == (1,)


async def test_owner_and_moderators_come_from_authorDetails_and_run_moderator_commands(
    fake: FakeYouTube, settings: Settings, tmp_path: Path
) -> None:
    fake.post(text_message("m1", VIEWER, "!persona captain-brine"))
    fake.post(text_message("m2", MODERATOR, "!persona captain-brine"))
    async with (
        managed(settings, ScriptedBackend()) as manager,
        running(settings, manager, fake, youtube_settings(tmp_path)) as adapter,
    ):
        await until(lambda: fake.inserted)
        card = await manager.persona_for("youtube", "live-chat-1")
        assert adapter.scheduler.stats.total() == 0, "commands never reach the reply queue"
    assert sent_texts(fake) == ["Now playing Captain Brine."], "only the moderator's switch ran"
    assert card.persona_id == "captain-brine"


async def test_forgetme_forgets_the_viewer(fake: FakeYouTube, settings: Settings, tmp_path: Path) -> None:
    fake.post(text_message("m1", VIEWER, "my secret is 42"))
    fake.post(text_message("m2", VIEWER, "!forgetme"))
    async with (
        managed(settings, ScriptedBackend()) as manager,
        running(settings, manager, fake, youtube_settings(tmp_path)),
    ):
        await until(lambda: fake.inserted)
        assert await manager.memory.get_user("youtube", "UC-viewer") is None
    assert "no longer remember" in sent_texts(fake)[0]


async def test_super_chats_and_memberships_are_stream_events_thanked_from_the_card(
    fake: FakeYouTube, settings: Settings, tmp_path: Path
) -> None:
    fake.post(
        message(
            "sc1",
            "superChatEvent",
            VIEWER,
            "$5.00 from Ava: keep it up",
            superChatDetails={
                "amountMicros": "5000000",
                "currency": "USD",
                "amountDisplayString": "$5.00",
                "userComment": "keep it up",
                "tier": 2,
            },
        )
    )
    fake.post(
        message(
            "ns1",
            "newSponsorEvent",
            OTHER,
            "Welcome to Members!",
            newSponsorDetails={"memberLevelName": "Crew", "isUpgrade": False},
        )
    )
    gifter = author("UC-gifter", "Gia", member=True)
    fake.post(
        message(
            "gb1",
            "membershipGiftingEvent",
            gifter,
            "",
            membershipGiftingDetails={"giftMembershipsCount": 5, "giftMembershipsLevelName": "Crew"},
        )
    )
    fake.post(
        message(
            "gr1",
            "giftMembershipReceivedEvent",
            VIEWER,
            "",
            giftMembershipReceivedDetails={
                "memberLevelName": "Crew",
                "gifterChannelId": "UC-gifter",
                "associatedMembershipGiftingMessageId": "gb1",
            },
        )
    )
    fake.post(
        message(
            "ms1",
            "memberMilestoneChatEvent",
            author("UC-cleo", "Cleo", member=True),
            "12 months",
            memberMilestoneChatDetails={"memberLevelName": "Crew", "memberMonth": 12, "userComment": "a year!"},
        )
    )
    async with (
        managed(settings, ScriptedBackend(default="A whole year, Cleo!")) as manager,
        running(settings, manager, fake, youtube_settings(tmp_path)) as adapter,
    ):
        await until(lambda: len(fake.inserted) >= 4, timeout=15)
        await adapter.director.join()
    assert sorted(sent_texts(fake)) == sorted(
        [
            "Thank you for the $5.00, Ava!",
            "Thank you for subscribing, Ben!",
            "Gia just gifted 5 subs! Thank you!",
            "A whole year, Cleo!",  # the card answers a milestone with a prompt
        ]
    ), "one thank-you for the gift bomb, none for each membership it gave"
    with sqlite3.connect(settings.db_path) as db:
        kinds = [
            row[0]
            for row in db.execute(
                "SELECT platform_message_id FROM messages WHERE platform_message_id LIKE 'event:%' ORDER BY id"
            )
        ]
    assert kinds == [
        "event:paid_message:sc1",
        "event:sub:ns1",
        "event:gift_bomb:gb1",
        "event:gift:gr1",
        "event:resub:ms1",
    ]


# -- errors and the quota ----------------------------------------------------------------------


async def test_rate_limit_exceeded_pauses_sending_and_a_waiting_line_is_answered_after_it(
    fake: FakeYouTube, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail_next("messages.insert", "rateLimitExceeded")
    fake.post(text_message("m1", VIEWER, "Pip, one?"))
    backend = ScriptedBackend(["first", "second"])
    youtube = youtube_settings(tmp_path, rate_limit_pause_s=1.0)
    async with managed(settings, backend) as manager, running(settings, manager, fake, youtube):
        await until(lambda: fake.calls("messages.insert"))
        fake.post(text_message("m2", OTHER, "Pip, two?"))  # during the pause: read, answered after it
        await until(lambda: fake.inserted, timeout=10)
        assert await manager.memory.get_user("youtube", "UC-other") is not None, "reading went on"
    inserts = fake.calls("messages.insert")
    assert len(inserts) == 2 and inserts[1].at - inserts[0].at >= 0.95, "nothing was asked of YouTube in the pause"
    assert sent_texts(fake) == ["second"]
    assert len(backend.requests) == 2, "nothing was generated that could not be sent"
    assert caplog.text.count("sending nothing for 1 s") == 1


async def test_quota_exceeded_on_send_stops_sending_until_the_reset_and_reading_goes_on(
    fake: FakeYouTube, settings: Settings, tmp_path: Path
) -> None:
    fake.fail_next("messages.insert", "quotaExceeded")
    fake.post(text_message("m1", VIEWER, "Pip, one?"))
    youtube = youtube_settings(tmp_path)
    async with (
        managed(settings, ScriptedBackend(default="hello")) as manager,
        running(settings, manager, fake, youtube) as adapter,
    ):
        await until(lambda: fake.calls("messages.insert"))
        fake.post(text_message("m2", OTHER, "Pip, two?"))
        polls = adapter.polls
        await until(lambda: adapter.polls >= polls + 3)
        stored = await manager.memory.get_user("youtube", "UC-other")
    assert len(fake.calls("messages.insert")) == 1, "nothing more is sent today"
    assert stored is not None, "the line after the quota was read and stored"
    assert json.loads((tmp_path / "youtube_quota.json").read_text())["sending_refused"] is True, "kept for a restart"


async def test_live_chat_ended_stops_reading(fake: FakeYouTube, settings: Settings, tmp_path: Path) -> None:
    fake.fail_next("messages.list", "liveChatEnded")
    async with managed(settings, ScriptedBackend()) as manager:
        adapter = YouTubeAdapter(
            settings,
            manager,
            youtube=youtube_settings(tmp_path),
            api_endpoint=fake.url,
            credentials=Credentials(token="t"),
        )
        await asyncio.wait_for(adapter.start(), 10)  # returns on its own
    assert len(fake.calls("messages.list")) == 1


async def test_offline_at_ends_the_chat_after_the_last_page(
    fake: FakeYouTube, settings: Settings, tmp_path: Path
) -> None:
    fake.post(text_message("m1", VIEWER, "bye all"))
    fake.offline = True
    async with managed(settings, ScriptedBackend()) as manager:
        adapter = YouTubeAdapter(
            settings,
            manager,
            youtube=youtube_settings(tmp_path),
            api_endpoint=fake.url,
            credentials=Credentials(token="t"),
        )
        await asyncio.wait_for(adapter.start(), 10)
        assert await manager.memory.get_user("youtube", "UC-viewer") is not None


async def test_sending_stops_with_one_line_before_the_share_runs_out_and_the_count_survives_a_restart(
    fake: FakeYouTube, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # 200 units a day, 40 % for sending: 80 units, four messages of 20.
    youtube = youtube_settings(tmp_path, quota_units_per_day=200, reply_share=0.4, stream_hours=0.0001)
    for n in range(3):
        fake.post(text_message(f"a{n}", author(f"UC-{n}", f"Viewer{n}"), f"Pip, question {n}?"))
    backend = ScriptedBackend(default="answer")
    async with managed(settings, backend) as manager:
        async with running(settings, manager, fake, youtube):
            await until(lambda: len(fake.inserted) == 3)
        for n in range(3, 8):  # a restart: the three sends are still counted
            fake.post(text_message(f"b{n}", author(f"UC-{n}", f"Viewer{n}"), f"Pip, question {n}?"))
        async with running(settings, manager, fake, youtube) as adapter:
            await until(lambda: len(fake.inserted) == 4)
            polls = adapter.polls
            await until(lambda: adapter.polls >= polls + 2)
            await asyncio.sleep(0.3)
            stored = [await manager.memory.get_user("youtube", f"UC-{n}") for n in range(3, 8)]
    assert len(fake.inserted) == 4, "no reply past the sending share"
    assert all(stored), "every line was still read and stored"
    assert caplog.text.count("sending share of today's quota is spent") == 1
    assert adapter.ledger.send_units == 4 * INSERT_COST
    assert len(backend.requests) == 4, "no reply generated past the share: it could not be sent"


def test_the_quota_plan_spreads_sending_and_reading_over_the_stream() -> None:
    plan = QuotaPlan(units_per_day=10_000, stream_hours=4, reply_share=0.4)
    assert plan.replies == 4_000 // INSERT_COST == 200
    assert plan.send_every_s == 4 * 3600 / 200 == 72.0
    assert plan.poll_every_s == 4 * 3600 / (6_000 // LIST_COST) == 12.0


# -- login -------------------------------------------------------------------------------------


def test_the_token_file_is_private_and_its_values_are_redacted_from_logs(tmp_path: Path) -> None:
    store = YouTubeTokenStore(tmp_path / "youtube_tokens.json")
    store.save(
        Credentials(
            token="ya29.access-secret",
            refresh_token="1//refresh-secret",
            token_uri="https://oauth2.googleapis.com/token",
            client_id="client",
            client_secret="client-secret",
        )
    )
    assert os.stat(store.path).st_mode & 0o777 == 0o600
    loaded = store.load()
    assert loaded.refresh_token == "1//refresh-secret"
    redactor = SecretRedactor([])  # only what the store registered
    said = redactor.redact("refresh failed for ya29.access-secret with 1//refresh-secret")
    assert "ya29.access-secret" not in said and "1//refresh-secret" not in said


async def test_youtube_auth_runs_googles_installed_app_flow_and_keeps_the_token_private(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiohttp import web

    from bot.youtube.auth import authorize

    granted: list[dict[str, str]] = []

    async def token(request: web.Request) -> web.Response:
        granted.append({key: str(value) for key, value in (await request.post()).items()})
        return web.json_response(
            {
                "access_token": "ya29.fresh-access",
                "refresh_token": "1//fresh-refresh",
                "expires_in": 3599,
                "scope": "https://www.googleapis.com/auth/youtube.force-ssl",
                "token_type": "Bearer",
            }
        )

    app = web.Application()
    app.router.add_post("/token", token)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    secrets = tmp_path / "client_secret.json"
    secrets.write_text(
        json.dumps(
            {
                "installed": {
                    "client_id": "costar-test.apps.googleusercontent.com",
                    "client_secret": "test-client-secret",
                    "auth_uri": "https://accounts.google.com/o/oauth2/auth",
                    "token_uri": f"http://127.0.0.1:{port}/token",
                    "redirect_uris": ["http://localhost"],
                }
            }
        )
    )
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the fake token endpoint speaks plain HTTP

    class ApprovingBrowser:
        """The streamer approving the consent page: Google redirects to the local server with a code."""

        def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
            import threading
            import urllib.parse
            import urllib.request

            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
            back = f"{query['redirect_uri']}?state={query['state']}&code=the-code&scope={query['scope']}"
            threading.Thread(target=lambda: urllib.request.urlopen(back, timeout=10).read(), daemon=True).start()
            return True

    monkeypatch.setattr("webbrowser.get", lambda using=None: ApprovingBrowser())
    youtube = youtube_settings(tmp_path, client_secrets_file=secrets)
    try:
        path = await asyncio.to_thread(authorize, settings, youtube, announce=lambda line: None)
    finally:
        await runner.cleanup()
    assert granted and granted[0]["code"] == "the-code"
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert YouTubeTokenStore(path).load().refresh_token == "1//fresh-refresh"
    said = SecretRedactor([]).redact("token ya29.fresh-access refresh 1//fresh-refresh")
    assert "ya29.fresh-access" not in said and "1//fresh-refresh" not in said


def test_every_youtube_setting_is_documented() -> None:
    example = (REPO / ".env.example").read_text(encoding="utf-8")
    page = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    for name in YouTubeSettings.model_fields:
        variable = f"YOUTUBE_{name.upper()}"
        assert variable in example and f"`{variable}`" in page, variable


# -- the plug-in -------------------------------------------------------------------------------


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_youtube_package_adds_no_import_to_engine_and_engine_names_no_platform() -> None:
    engine_files = sorted((REPO / "engine").rglob("*.py"))
    for path in engine_files:
        imported = _imports(path)
        assert not any(name == "bot" or name.startswith("bot.") for name in imported), f"{path} imports bot"
        assert "youtube" not in path.read_text(encoding="utf-8").casefold(), f"{path} names YouTube"


def test_settings_of_the_plug_in_live_in_the_plug_in() -> None:
    from engine.settings import known_variables

    assert not any(name.startswith("YOUTUBE_") for name in known_variables())
    assert set(YouTubeSettings.model_fields) >= {"quota_units_per_day", "stream_hours"}


# -- the recorded chat -------------------------------------------------------------------------


def _recorded_chat() -> Path:
    for candidate in (REPO.parent / "shared" / "data", Path("/work/shared/data")):
        if (candidate / "live-chat-press-briefing.csv").is_file():
            return candidate / "live-chat-press-briefing.csv"
    pytest.skip("the shared recorded chat is not in this checkout")


@pytest.mark.parametrize(("speed", "lines"), [(100.0, 600), (1.0, 4)], ids=["100x", "recorded-pace"])
async def test_the_recorded_press_briefing_replays_through_the_fake(
    fake: FakeYouTube, settings: Settings, tmp_path: Path, speed: float, lines: int
) -> None:
    from bench.youtube_flood import replay_chat

    # At 100x, 600 lines are 7.8 minutes of the briefing; at its own pace, its first 4 s.
    result = await replay_chat(
        _recorded_chat(),
        settings,
        fake,
        speed=speed,
        limit=lines,
        quota_units=2_000,
        address_every=3,
        tmp_path=tmp_path,
    )
    assert result.stored == result.lines, "every line stored once"
    assert result.sends * INSERT_COST <= result.send_share_units, "no reply past the quota budget"
    assert 1 <= result.answered <= result.addressed, "questions addressed to the character are answered"
