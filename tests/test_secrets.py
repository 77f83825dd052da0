"""Secrets: tokens and keys never show up in logs, error messages or console output."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bot.app
from bot.app import build_manager, close_manager
from bot.console.adapter import ConsoleAdapter
from bot.platforms import load_settings
from engine.backends.base import Backend, GenerationRequest, TextStream
from engine.backends.resilience import with_resilience
from engine.errors import SettingsError
from engine.observability.redact import REDACTED, SecretRedactor, install_secret_redaction, register_secret

REPO = Path(__file__).resolve().parents[1]
SECRETS = {
    "DISCORD_TOKEN": "SENTINEL-discord-MTIzNDU2.abcdef",
    "TWITCH_CLIENT_SECRET": "SENTINEL-twitch-0123456789abcdef",
    "COSTAR_BACKEND_API_KEY": "SENTINEL-apikey-sk-0123456789",
}


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("COSTAR_DATA_DIR", str(tmp_path))
    # Third-party libraries at DEBUG too (they log request headers there): the most verbose case.
    return {**os.environ, "PYTHONPATH": str(REPO), "COSTAR_LOG_LEVEL": "DEBUG", "COSTAR_LOG_LIBRARIES": "DEBUG"}


def assert_no_secret(text: str) -> None:
    for name, value in SECRETS.items():
        assert value not in text, f"{name} leaked"
        assert value[9:] not in text, f"part of {name} leaked"


class KeyEchoingBackend(Backend):
    """A client library that puts the request's headers into its error (it happens)."""

    name = "leaky"

    def stream(self, request: GenerationRequest) -> TextStream:
        async def chunks():
            raise ConnectionError(
                f"401 Unauthorized; sent headers: Authorization: Bearer {SECRETS['COSTAR_BACKEND_API_KEY']}"
            )
            yield ""

        return TextStream().attach(chunks())


def test_settings_and_settings_errors_never_show_secrets(secret_env, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(None)
    assert_no_secret(repr(settings) + str(settings) + settings.model_dump_json())
    monkeypatch.setenv("COSTAR_BACKEND_TIMEOUT_S", "soon")
    monkeypatch.setenv("DISCORD_TEST_GUILD_ID", SECRETS["DISCORD_TOKEN"])  # a token pasted into the wrong variable
    with pytest.raises(SettingsError) as caught:
        load_settings(None)
    assert_no_secret(str(caught.value))


def test_the_platforms_secrets_are_redacted_like_costars_own(secret_env) -> None:
    """A platform's section lives in its package (settings.platforms), and its tokens are still secrets."""
    redactor = install_secret_redaction(load_settings(None), logging.getLogger("test-platform-secrets"))
    line = f"login with {SECRETS['DISCORD_TOKEN']} and {SECRETS['TWITCH_CLIENT_SECRET']} failed"
    assert_no_secret(redactor.redact(line))


@pytest.mark.parametrize("arguments", [["persona", "list"], ["persona", "show", "pip"], ["run", "--console"]])
def test_cli_sessions_at_debug_level_never_print_secrets(secret_env: dict[str, str], tmp_path: Path, arguments) -> None:
    env = {**secret_env, "COSTAR_BACKEND_KIND": "scripted"}
    # With DISCORD_TOKEN set, `run` also starts the Discord adapter, whose login fails here (no
    # network): a failing platform login with a real token configured is a scenario worth scanning.
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "--env-file", str(tmp_path / "none.env"), *arguments],
        input="hello Pip\n/about\n",
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 or arguments[0] == "run", done.stderr
    assert "DEBUG" in done.stderr or arguments[0] == "persona"
    assert_no_secret(done.stdout + done.stderr)


def test_a_settings_error_from_the_cli_never_prints_secrets(secret_env: dict[str, str], tmp_path: Path) -> None:
    env = {**secret_env, "COSTAR_BACKEND_KIND": "openai"}  # no base URL: refused
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "--env-file", str(tmp_path / "none.env"), "persona", "list"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "COSTAR_BACKEND_BASE_URL" in done.stderr
    assert_no_secret(done.stdout + done.stderr)


async def test_a_backend_error_quoting_the_key_is_redacted_in_logs_and_console(secret_env, counter, capsys) -> None:
    settings = load_settings(None, prompt={"fallback_reply": "brb"})
    log_output = io.StringIO()
    handler = logging.StreamHandler(log_output)
    root = logging.getLogger()
    root.addHandler(handler)
    previous_level = root.level
    root.setLevel(logging.DEBUG)
    redactor = install_secret_redaction(settings)
    manager = await build_manager(settings, backend=with_resilience(KeyEchoingBackend(), settings), counter=counter)
    try:
        stdin, stdout = io.StringIO("hi\nhello again\n"), io.StringIO()
        stdin.isatty = lambda: False  # type: ignore[method-assign]
        await ConsoleAdapter(settings, manager, stdin=stdin, stdout=stdout).start()
        logging.getLogger("costar.test").error(
            "upstream said %s", SECRETS["DISCORD_TOKEN"], exc_info=ValueError(SECRETS["TWITCH_CLIENT_SECRET"])
        )
    finally:
        await close_manager(manager)
        root.removeHandler(handler)
        root.setLevel(previous_level)
        for other in root.handlers:
            other.removeFilter(redactor)
    captured = capsys.readouterr()
    everything = log_output.getvalue() + stdout.getvalue() + captured.out + captured.err
    assert "401 Unauthorized" in captured.err and REDACTED in captured.err
    assert log_output.getvalue().count(REDACTED) >= 2
    assert_no_secret(everything)


async def test_an_adapter_stopped_by_a_library_error_is_logged_without_the_errors_text(
    settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    leaked = "oauth-token-SENTINEL-42"

    class LeakyPlatform:
        async def start(self) -> None:
            raise RuntimeError(f"refresh failed for token {leaked}")  # a platform library's words

        async def close(self) -> None:
            pass

    monkeypatch.setattr(bot.app, "configured_adapters", lambda *args, **kwargs: [LeakyPlatform()])
    settings.backend.kind = "scripted"
    assert await bot.app.run(settings) == 1
    stopped = [r for r in caplog.records if r.getMessage().startswith("adapter stopped")]
    assert [r.getMessage() for r in stopped] == ["adapter stopped: RuntimeError"]
    register_secret(leaked)  # as the token store does for every token it loads or saves
    formatted = logging.Formatter().format(stopped[0])
    assert leaked in formatted  # the traceback keeps the error's text for whoever debugs it...
    assert leaked not in SecretRedactor([]).redact(formatted)  # ...and redaction takes the token out
