"""Settings: documented defaults, clear errors naming the variable, typos refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.errors import SettingsError
from engine.settings import _known_variables, load_settings

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
    settings = load_settings(env_file)
    assert settings.core.default_persona == "captain-brine"
    assert settings.discord.token is not None and settings.discord.token.get_secret_value() == "super-secret-token"
    assert "super-secret-token" not in repr(settings)


def test_every_setting_is_documented_in_env_example() -> None:
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (REPO / ".env.example").read_text(), flags=re.MULTILINE))
    assert _known_variables() - documented == set()
