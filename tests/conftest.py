"""Shared fixtures: isolated settings, a real SQLite file, a model-free manager by default.

Most tests talk to a ``ConversationManager`` with the scripted backend and the pessimistic
``ApproxTokenCounter``: nothing needs the SmolLM2 files. Tests about the real model or its exact
token counts ask for ``model_path``, ``token_counter``, ``embedded_backend``, ``llamacpp_backend``
or ``local_backend`` (each CPU backend in turn; the model is converted once per machine and loaded
once per session); any test that does is marked ``model`` automatically, so
``pytest -m "not model"`` runs without the model cache.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.platforms import load_settings
from engine.backends.scripted import ScriptedBackend
from engine.manager import ConversationManager
from engine.prompting.tokens import ApproxTokenCounter, TokenCounter, TokenizerCounter
from engine.settings import CoreSettings, Settings

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MODEL_FIXTURES = frozenset(
    {"model_path", "token_counter", "embedded_backend", "llamacpp_backend", "local_backend", "minilm"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A test that touches the real model is a model test, whether or not its author said so.
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.model)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own COSTAR_* / DISCORD_* / TWITCH_* variables must not leak into tests.
    for key in list(os.environ):
        if key.startswith(("COSTAR_", "DISCORD_", "TWITCH_")):
            monkeypatch.delenv(key)
    # No test loads all-MiniLM-L6-v2 unless it asks (``minilm``, or memory={"embeddings": "local"}):
    # the bots that tests and their subprocesses start recall by full text only.
    monkeypatch.setenv("COSTAR_MEMORY_EMBEDDINGS", "off")
    # Bots that tests start side by side each take a free port for their dashboard, not 8766.
    monkeypatch.setenv("COSTAR_DASHBOARD_PORT", "0")
    # Nor does any persona speak through the persona-following adapter (personas/adapters/costar-persona)
    # unless the test asks (backend={"persona_adapter": True}): chat-behaviour tests run on the bare base model.
    monkeypatch.setenv("COSTAR_BACKEND_PERSONA_ADAPTER", "false")


# A shipped card's model block, with whatever adapter a user bound there since.
_MODEL_BLOCK = re.compile(r"^model:\n(?:[ \t].*\n)*", re.MULTILINE)


@pytest.fixture(scope="session")
def pristine_cards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped cards with no adapter bound: chat-behaviour tests run every persona on the bare
    base model, so neither the LoRA Pip ships with (personas/adapters/pip) nor one a user bound with
    ``finetune.register`` changes what they see; tests/test_shipped_adapter.py checks the real
    binding. Subprocesses get it as COSTAR_PERSONAS_DIR (a later folder's card replaces a built-in
    one of the same id)."""
    from personas.registry import BUILTIN_CARDS_DIR

    folder = tmp_path_factory.mktemp("shipped-cards")
    for card in BUILTIN_CARDS_DIR.glob("*.yaml"):
        text = _MODEL_BLOCK.sub("model:\n  base: null\n  adapter: null\n", card.read_text(encoding="utf-8"))
        (folder / card.name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(autouse=True)
def _shipped_cards_as_shipped(monkeypatch: pytest.MonkeyPatch, pristine_cards: Path) -> None:
    monkeypatch.setattr("personas.registry.BUILTIN_CARDS_DIR", pristine_cards)
    monkeypatch.setattr("bot.app.BUILTIN_CARDS_DIR", pristine_cards)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


# -- the real model (tests using these are marked ``model``) ------------------------------------


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The real SmolLM2-135M-Instruct, converted from the packaged GGUF once per machine."""
    from engine.serving.model_store import ensure_default_model

    return ensure_default_model(CoreSettings().cache_dir)


@pytest.fixture(scope="session")
def token_counter(model_path: Path) -> TokenizerCounter:
    """Exact counts from the real tokenizer, for tests about token budgets and special tokens."""
    return TokenizerCounter(model_path / "tokenizer.json")


@pytest.fixture(scope="session")
def embedded_backend(model_path: Path):
    """One loaded model for the whole session (greedy decoding in tests keeps replies stable)."""
    from engine.backends.embedded import EmbeddedBackend

    backend = EmbeddedBackend(str(model_path), cache_dir=CoreSettings().cache_dir)
    backend.load()
    return backend


@pytest.fixture(scope="session")
def llamacpp_backend(token_counter: TokenizerCounter):
    """The packaged SmolLM2 GGUF on llama.cpp, checked against the tokenizer the builder counts with."""
    from engine.backends.llamacpp import LlamaCppBackend
    from engine.serving.model_store import find_smollm2_gguf

    backend = LlamaCppBackend(
        find_smollm2_gguf(),
        context_tokens=2048,
        threads=1,  # llama.cpp's spinning threads slow down many times over when the cores are shared
        adapter_cache_dir=CoreSettings().cache_dir,
        counter=token_counter,
    )
    backend.load()
    return backend


@pytest.fixture(scope="session")
def minilm():
    """The real all-MiniLM-L6-v2 (unpacked and exported once per machine, loaded once per session)."""
    from engine.recall.embedding import LocalEmbedder
    from engine.serving.model_store import ensure_minilm

    embedder = LocalEmbedder(ensure_minilm(CoreSettings().cache_dir))
    embedder.load()
    return embedder


@pytest.fixture(params=["embedded", "llamacpp"])
def local_backend(request: pytest.FixtureRequest):
    """Each CPU backend in turn: behaviour that depends on the real model must hold on both."""
    return request.getfixturevalue(f"{request.param}_backend")


# -- model-free defaults ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def counter() -> TokenCounter:
    """The counter a deployment without a tokenizer uses: about 3 bytes a token, never under-counting."""
    return ApproxTokenCounter()


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """``make_settings(**sections)``: settings keeping every file in this test's tmp_path.

    ``make_settings(other_dir, **sections)`` puts the data somewhere else (a second bot, a restart).
    """

    def make(data_dir: Path | None = None, /, **sections: dict) -> Settings:
        core = {"data_dir": data_dir if data_dir is not None else tmp_path, **sections.pop("core", {})}
        # A loaded CI machine can be slow; tests that want a timeout set their own.
        backend = {"timeout_s": 600.0, **sections.pop("backend", {})}
        return load_settings(None, core=core, backend=backend, **sections)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def scripted() -> ScriptedBackend:
    return ScriptedBackend(default="Hello from the script!")


@pytest.fixture
async def manager(
    settings: Settings, scripted: ScriptedBackend, counter: TokenCounter
) -> AsyncIterator[ConversationManager]:
    """A whole bot on a fresh database, answered by the script, counting tokens approximately."""
    from bot.app import build_manager, close_manager

    built = await build_manager(settings, backend=scripted, counter=counter)
    yield built
    await close_manager(built)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    # A test against the real vLLM that fails shows the server's own words next to the assertion.
    from tests.vllm_cpu import VLLM_LOG_KEY

    outcome = yield
    report = outcome.get_result()
    log_path = item.config.stash.get(VLLM_LOG_KEY, None)
    if report.failed and log_path is not None and log_path.exists() and "vllm" in getattr(item, "fixturenames", ()):
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
        report.sections.append((f"vLLM server log (tail of {log_path})", tail))
