"""The dashboard's security rules, one test each (docs/dashboard.md#security).

Against a real server on a free loopback port, with aiohttp as the browser: the headers a
browser would send (Origin, Host, the session cookie) are set by hand so each rule is seen alone.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.dashboard.server import COOKIE, DashboardServer, dashboard_tokens
from bot.on_stream import start_dashboard
from engine.errors import SettingsError
from engine.manager import ConversationManager
from engine.observability.redact import SecretRedactor
from engine.settings import Settings, load_settings


@pytest.fixture
async def dashboard(manager: ConversationManager) -> AsyncIterator[DashboardServer]:
    server = DashboardServer(manager, manager.settings.dashboard, dashboard_tokens(manager.settings))

    async def echo(request: aiohttp.web.Request, body: dict[str, Any]) -> dict[str, Any]:
        return {"type": "echo", "body": body}

    server.actions["echo"] = echo  # a stand-in for a real action: these tests are about the gate
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # No cookie jar: each test says which cookie it sends.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


def own(server: DashboardServer) -> str:
    return f"http://127.0.0.1:{server.port}"


async def log_in(http: aiohttp.ClientSession, server: DashboardServer, token: str) -> tuple[str, str]:
    """(session cookie, CSRF token) of a login with ``token``."""
    async with http.post(f"{own(server)}/dashboard/login", data={"token": token}) as answer:
        assert answer.status == 200, await answer.text()
        return answer.cookies[COOKIE].value, (await answer.json())["csrf"]


async def echo(
    http: aiohttp.ClientSession, server: DashboardServer, cookie: str, csrf: str | None, **headers: str
) -> int:
    sent = {"Cookie": f"{COOKIE}={cookie}", **headers}
    if csrf is not None:
        sent["X-CSRF-Token"] = csrf
    async with http.post(f"{own(server)}/dashboard/action/echo", json={"say": "hi"}, headers=sent) as answer:
        return answer.status


# -- tokens -------------------------------------------------------------------------------


def test_login_tokens_are_made_once_kept_0600_and_redacted_from_logs(settings: Settings) -> None:
    first = dashboard_tokens(settings)
    assert len(first.moderator) >= 32 and len(first.read_only) >= 32 and first.moderator != first.read_only
    assert set(first.made) == {"moderator", "read-only"}
    again = dashboard_tokens(settings)
    assert (again.moderator, again.read_only, again.made) == (first.moderator, first.read_only, ())
    for name in ("dashboard-token", "dashboard-readonly-token"):
        assert (settings.core.data_dir / name).stat().st_mode & 0o777 == 0o600, name
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "echoed %s", (first.moderator,), None)
    SecretRedactor([]).filter(record)
    assert first.moderator not in record.getMessage()


async def test_make_run_prints_the_url_and_the_tokens_at_the_first_start_only(
    manager: ConversationManager, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.on_stream")
    first = await start_dashboard(manager.settings, manager)
    await first.close()
    printed = capsys.readouterr().err
    tokens = dashboard_tokens(manager.settings)
    assert tokens.moderator in printed and tokens.read_only in printed
    assert f"Dashboard on http://127.0.0.1:{first.port}/dashboard" in caplog.text
    second = await start_dashboard(manager.settings, manager)
    await second.close()
    assert tokens.moderator not in capsys.readouterr().err, "printed once, at the first start"


def test_a_short_or_shared_configured_token_stops_the_start_with_one_line(
    make_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(SettingsError, match="COSTAR_DASHBOARD_TOKEN is only 5 characters"):
        dashboard_tokens(make_settings(dashboard={"token": "short"}))
    same = "s" * 20
    with pytest.raises(SettingsError, match="must differ"):
        dashboard_tokens(make_settings(dashboard={"token": same, "readonly_token": same}))


# -- login and session ----------------------------------------------------------------------


async def test_a_wrong_token_gets_no_session(dashboard: DashboardServer, http: aiohttp.ClientSession) -> None:
    for wrong in ("", "nope", dashboard.tokens.moderator + "x", "é" * 40):
        async with http.post(f"{own(dashboard)}/dashboard/login", data={"token": wrong}) as answer:
            assert answer.status == 401 and COOKIE not in answer.cookies, wrong
    async with http.get(f"{own(dashboard)}/dashboard/session", headers={"Cookie": f"{COOKIE}=made-up"}) as answer:
        assert answer.status == 401


async def test_the_session_cookie_is_httponly_and_samesite_strict(
    dashboard: DashboardServer, http: aiohttp.ClientSession
) -> None:
    async with http.post(f"{own(dashboard)}/dashboard/login", data={"token": dashboard.tokens.moderator}) as answer:
        cookie = answer.cookies[COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/dashboard"


async def test_every_state_change_needs_the_sessions_csrf_token(
    dashboard: DashboardServer, http: aiohttp.ClientSession
) -> None:
    cookie, csrf = await log_in(http, dashboard, dashboard.tokens.moderator)
    assert await echo(http, dashboard, cookie, None) == 403
    assert await echo(http, dashboard, cookie, "a" * len(csrf)) == 403
    _, other_csrf = await log_in(http, dashboard, dashboard.tokens.moderator)
    assert await echo(http, dashboard, cookie, other_csrf) == 403, "another session's token is no good"
    assert await echo(http, dashboard, cookie, csrf) == 200


async def test_a_post_from_another_site_is_refused_even_the_login(
    dashboard: DashboardServer, http: aiohttp.ClientSession
) -> None:
    cookie, csrf = await log_in(http, dashboard, dashboard.tokens.moderator)
    for origin in ("https://evil.example", "null", "http://127.0.0.1:1"):
        assert await echo(http, dashboard, cookie, csrf, Origin=origin) == 403, origin
        async with http.post(
            f"{own(dashboard)}/dashboard/login", data={"token": dashboard.tokens.moderator}, headers={"Origin": origin}
        ) as answer:
            assert answer.status == 403, origin
    assert await echo(http, dashboard, cookie, csrf, Origin=own(dashboard)) == 200


async def test_a_read_only_login_cannot_change_anything(
    dashboard: DashboardServer, http: aiohttp.ClientSession
) -> None:
    cookie, csrf = await log_in(http, dashboard, dashboard.tokens.read_only)
    async with http.get(f"{own(dashboard)}/dashboard/session", headers={"Cookie": f"{COOKIE}={cookie}"}) as answer:
        assert (await answer.json())["role"] == "read-only"
    assert await echo(http, dashboard, cookie, csrf) == 403


# -- the feed and the Host header -------------------------------------------------------------


async def feed_status(http: aiohttp.ClientSession, server: DashboardServer, cookie: str | None, **headers: str) -> int:
    if cookie is not None:
        headers["Cookie"] = f"{COOKIE}={cookie}"
    try:
        async with http.ws_connect(f"{own(server)}/dashboard/feed", headers=headers) as socket:
            hello = await asyncio.wait_for(socket.receive_json(), 5)
            assert hello["type"] == "hello"
            return 101
    except aiohttp.WSServerHandshakeError as refused:
        return refused.status


async def test_the_feed_refuses_null_foreign_and_missing_origins(
    dashboard: DashboardServer, http: aiohttp.ClientSession
) -> None:
    cookie, _ = await log_in(http, dashboard, dashboard.tokens.read_only)
    assert await feed_status(http, dashboard, cookie, Origin=own(dashboard)) == 101
    for origin in ("null", "https://evil.example", "http://localhost:1", "http://127.0.0.1:1"):
        assert await feed_status(http, dashboard, cookie, Origin=origin) == 403, origin
    assert await feed_status(http, dashboard, cookie) == 403, "no Origin: not a page of ours"
    assert await feed_status(http, dashboard, None, Origin=own(dashboard)) == 401, "no session"


async def test_a_host_header_not_naming_the_bind_is_refused(
    dashboard: DashboardServer, http: aiohttp.ClientSession
) -> None:
    # DNS rebinding: evil.example made to resolve to 127.0.0.1 arrives with its own name.
    cookie, _ = await log_in(http, dashboard, dashboard.tokens.read_only)
    rebound = f"evil.example:{dashboard.port}"
    async with http.get(f"{own(dashboard)}/dashboard", headers={"Host": rebound}) as answer:
        assert answer.status == 403
    status = await feed_status(http, dashboard, cookie, Host=rebound, Origin=f"http://{rebound}")
    assert status == 403
    async with http.get(f"{own(dashboard)}/dashboard", headers={"Host": f"localhost:{dashboard.port}"}) as answer:
        assert answer.status == 200


async def test_no_secret_reaches_the_page_or_the_feed(
    make_settings: Callable[..., Settings], manager: ConversationManager, http: aiohttp.ClientSession
) -> None:
    settings = make_settings(backend={"api_key": "sk-backend-secret-0123456789"})
    server = DashboardServer(manager, settings.dashboard, dashboard_tokens(settings))
    await server.start()
    try:
        cookie, _ = await log_in(http, server, server.tokens.moderator)
        seen = []
        for path in ("/dashboard", "/dashboard/app.js", "/dashboard/style.css", "/dashboard/session"):
            async with http.get(f"{own(server)}{path}", headers={"Cookie": f"{COOKIE}={cookie}"}) as answer:
                seen.append(await answer.text())
        headers = {"Cookie": f"{COOKIE}={cookie}", "Origin": own(server)}
        async with http.ws_connect(f"{own(server)}/dashboard/feed", headers=headers) as socket:
            seen.append(str(await socket.receive_json()))
            seen.append(str(await asyncio.wait_for(socket.receive_json(), 5)))  # the first status
    finally:
        await server.close()
    for secret in (server.tokens.moderator, server.tokens.read_only, "sk-backend-secret-0123456789"):
        assert not any(secret in text for text in seen)


# -- where it listens ---------------------------------------------------------------------------


def test_the_dashboard_is_on_and_on_loopback_by_default() -> None:
    defaults = load_settings(None).dashboard
    assert defaults.enabled and defaults.host == "127.0.0.1"


async def test_a_public_bind_without_tls_is_refused_with_one_line(
    make_settings: Callable[..., Settings], manager: ConversationManager
) -> None:
    settings = make_settings(dashboard={"host": "0.0.0.0"})
    server = DashboardServer(manager, settings.dashboard, dashboard_tokens(settings))
    with pytest.raises(SettingsError) as refused:
        await server.start()
    assert "\n" not in str(refused.value) and "COSTAR_DASHBOARD_TLS_CERT" in str(refused.value)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    if shutil.which("openssl") is None:
        pytest.skip("openssl (to make a test certificate) is not installed")
    request = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=costar.test"]
    subprocess.run(
        [*request, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_a_public_bind_with_tls_serves_https_with_a_secure_cookie_to_its_names(
    make_settings: Callable[..., Settings],
    manager: ConversationManager,
    http: aiohttp.ClientSession,
    certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    tls = {"host": "0.0.0.0", "hostnames": "costar.test", "tls_cert": str(cert), "tls_key": str(key)}
    settings = make_settings(dashboard=tls)
    server = DashboardServer(manager, settings.dashboard, dashboard_tokens(settings))
    await server.start()
    try:
        base = f"https://127.0.0.1:{server.port}"
        login = {"token": server.tokens.moderator}
        async with http.post(
            f"{base}/dashboard/login", data=login, ssl=False, headers={"Host": f"costar.test:{server.port}"}
        ) as answer:
            assert answer.status == 200 and answer.cookies[COOKIE]["secure"] is True
        async with http.get(f"{base}/dashboard", ssl=False, headers={"Host": f"other.test:{server.port}"}) as answer:
            assert answer.status == 403
    finally:
        await server.close()


async def test_a_session_ends_after_session_hours(
    make_settings: Callable[..., Settings], manager: ConversationManager, http: aiohttp.ClientSession
) -> None:
    settings = make_settings(dashboard={"session_hours": 0.3 / 3600})  # 0.3 s
    server = DashboardServer(manager, settings.dashboard, dashboard_tokens(settings))
    await server.start()
    try:
        cookie, _ = await log_in(http, server, server.tokens.moderator)
        await asyncio.sleep(0.5)
        async with http.get(f"{own(server)}/dashboard/session", headers={"Cookie": f"{COOKIE}={cookie}"}) as answer:
            assert answer.status == 401
    finally:
        await server.close()
