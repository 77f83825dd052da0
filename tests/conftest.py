"""Shared fixtures: isolated settings, a real SQLite file, the real SmolLM2 model loaded once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.backends.scripted import ScriptedBackend
from engine.manager import ConversationManager
from engine.prompting.tokens import TokenizerCounter
from engine.settings import CoreSettings, Settings, load_settings

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own COSTAR_* / DISCORD_* / TWITCH_* variables must not leak into tests.
    import os

    for key in list(os.environ):
        if key.startswith(("COSTAR_", "DISCORD_", "TWITCH_")):
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The real SmolLM2-135M-Instruct, converted from the packaged GGUF once per machine."""
    from engine.serving.model_store import ensure_default_model

    return ensure_default_model(CoreSettings().cache_dir)


@pytest.fixture(scope="session")
def token_counter(model_path: Path) -> TokenizerCounter:
    return TokenizerCounter(model_path / "tokenizer.json")


@pytest.fixture(scope="session")
def embedded_backend(model_path: Path):
    """One loaded model for the whole session (greedy decoding in tests keeps replies stable)."""
    from engine.backends.embedded import EmbeddedBackend

    backend = EmbeddedBackend(str(model_path), cache_dir=CoreSettings().cache_dir)
    backend.load()
    return backend


def make_settings(tmp_path: Path, **sections: dict) -> Settings:
    core = {"data_dir": tmp_path, **sections.pop("core", {})}
    # A loaded CI machine can be slow; tests that want a timeout set their own.
    backend = {"timeout_s": 600.0, **sections.pop("backend", {})}
    return load_settings(None, core=core, backend=backend, **sections)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def scripted() -> ScriptedBackend:
    return ScriptedBackend(default="Hello from the script!")


@pytest.fixture
async def manager(settings: Settings, scripted: ScriptedBackend, token_counter: TokenizerCounter) -> AsyncIterator[ConversationManager]:
    from bot.app import build_manager, close_manager

    built = await build_manager(settings, backend=scripted, counter=token_counter)
    yield built
    await close_manager(built)
