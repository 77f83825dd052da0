"""Every card without an adapter of its own speaks through the persona-following adapter
(personas/adapters/costar-persona) when it is installed; COSTAR_BACKEND_PERSONA_ADAPTER=false turns it off.

The adapter here is a copy of Pip's shipped LoRA put where the persona adapter goes: a real
SmolLM2 LoRA, so the backends load it as they would the trained one.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.app import build_manager, close_manager, load_personas
from engine.backends.factory import make_backend
from engine.backends.scripted import ScriptedBackend
from engine.events import ChatEvent
from engine.serving.adapter_paths import adapter_folder
from engine.serving.vllm_args import plan_from_settings
from engine.settings import Settings
from finetune import check
from personas.registry import PERSONA_ADAPTER_NAME, PersonaRegistry

CARDS = Path(__file__).resolve().parent.parent / "personas" / "cards"
PIP_ADAPTER = Path(__file__).resolve().parent.parent / "personas" / "adapters" / "pip"


@pytest.fixture(autouse=True)
def _the_cards_as_committed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pip binds its own adapter here, as shipped (conftest's copies bind none).
    monkeypatch.setattr("personas.registry.BUILTIN_CARDS_DIR", CARDS)
    monkeypatch.setattr("bot.app.BUILTIN_CARDS_DIR", CARDS)


@pytest.fixture
def persona_adapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A LoRA installed where costar looks for the persona adapter."""
    folder = tmp_path / "adapters" / PERSONA_ADAPTER_NAME
    shutil.copytree(PIP_ADAPTER, folder)
    monkeypatch.setattr("bot.app.PERSONA_ADAPTER_DIR", folder)
    return folder


@pytest.fixture
def on(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    """Settings with the persona adapter on (conftest turns it off for every other test)."""

    def make(**backend: object) -> Settings:
        return make_settings(backend={"persona_adapter": True, **backend})

    return make


def _adapter_of(personas: PersonaRegistry, persona_id: str) -> tuple[str | None, str | None]:
    card = personas.cards[persona_id]
    name = card.model.adapter.name if card.model.adapter else None
    return name, adapter_folder(card, personas.sources.get(persona_id))


def test_a_card_without_an_adapter_speaks_through_the_persona_adapter(
    on: Callable[..., Settings], persona_adapter: Path
) -> None:
    personas = load_personas(on())

    assert _adapter_of(personas, "captain-brine") == (PERSONA_ADAPTER_NAME, str(persona_adapter))
    assert _adapter_of(personas, "pip") == ("pip-lora", str(CARDS / ".." / "adapters" / "pip"))


def test_a_sillytavern_card_gets_the_persona_adapter_too(
    make_settings: Callable[..., Settings], persona_adapter: Path, shared_data: Path, tmp_path: Path
) -> None:
    cards = tmp_path / "cards"
    cards.mkdir()
    shutil.copy(shared_data / "card-v2-seraphina.png", cards)
    personas = load_personas(make_settings(core={"personas_dir": cards}, backend={"persona_adapter": True}))

    assert _adapter_of(personas, "seraphina") == (PERSONA_ADAPTER_NAME, str(persona_adapter))


def test_the_setting_off_leaves_those_cards_on_the_bare_base_model(
    make_settings: Callable[..., Settings], persona_adapter: Path
) -> None:
    personas = load_personas(make_settings(backend={"persona_adapter": False}))

    assert _adapter_of(personas, "captain-brine") == (None, None)
    assert _adapter_of(personas, "pip")[0] == "pip-lora"


def test_the_setting_reads_on_and_off_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.settings import BackendSettings

    monkeypatch.setenv("COSTAR_BACKEND_PERSONA_ADAPTER", "off")
    assert BackendSettings().persona_adapter is False
    monkeypatch.setenv("COSTAR_BACKEND_PERSONA_ADAPTER", "on")
    assert BackendSettings().persona_adapter is True


def test_without_the_adapter_installed_nothing_is_bound(
    on: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.app.PERSONA_ADAPTER_DIR", tmp_path / "not-installed")
    assert _adapter_of(load_personas(on()), "captain-brine") == (None, None)


def test_a_card_that_says_adapter_null_keeps_the_bare_base_model(
    make_settings: Callable[..., Settings], persona_adapter: Path, tmp_path: Path
) -> None:
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "nova.yaml").write_text("name: Nova\nmodel:\n  adapter: null\n", encoding="utf-8")
    (cards / "rex.yaml").write_text("name: Rex\n", encoding="utf-8")
    personas = load_personas(make_settings(core={"personas_dir": cards}, backend={"persona_adapter": True}))

    assert _adapter_of(personas, "nova") == (None, None)
    assert _adapter_of(personas, "rex")[0] == PERSONA_ADAPTER_NAME


def test_an_adapter_trained_for_another_base_is_not_bound(on: Callable[..., Settings], persona_adapter: Path) -> None:
    config_path = persona_adapter / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config_path.write_text(json.dumps(config | {"base_model_name_or_path": "meta-llama/Llama-3.1-8B"}))

    assert _adapter_of(load_personas(on()), "captain-brine") == (None, None)


def test_vllm_args_serve_the_persona_adapter_once_next_to_pips(
    on: Callable[..., Settings], persona_adapter: Path
) -> None:
    settings = on()
    args = plan_from_settings(settings, load_personas(settings)).args()

    modules = sorted(json.loads(arg)["name"] for arg in args[args.index("--lora-modules") + 1 :] if arg.startswith("{"))
    assert modules == [PERSONA_ADAPTER_NAME, "pip-lora"]
    assert check.main([str(persona_adapter)]) == 0


def test_the_embedded_backend_preloads_the_persona_adapter(on: Callable[..., Settings], persona_adapter: Path) -> None:
    settings = on(kind="embedded")
    backend = make_backend(settings, load_personas(settings))

    assert backend.preload == {  # type: ignore[attr-defined]
        "pip-lora": str(CARDS / ".." / "adapters" / "pip"),
        PERSONA_ADAPTER_NAME: str(persona_adapter),
    }


async def test_a_persona_switch_selects_each_characters_adapter(
    on: Callable[..., Settings], persona_adapter: Path, counter
) -> None:
    backend = ScriptedBackend(default="Ahoy!")
    manager = await build_manager(on(kind="scripted"), backend=backend, counter=counter)
    try:
        for number, persona in enumerate(["pip", "captain brine", "pip"]):
            await manager.switch_persona("console", "deck", persona)
            await manager.handle(
                ChatEvent("console", "deck", "dee", "dee", "who are you?", f"m{number}", addresses_bot=True)
            )
    finally:
        await close_manager(manager)

    assert [(request.model, request.adapter_path) for request in backend.requests] == [
        ("pip-lora", str(CARDS / ".." / "adapters" / "pip")),
        (PERSONA_ADAPTER_NAME, str(persona_adapter)),
        ("pip-lora", str(CARDS / ".." / "adapters" / "pip")),
    ]


@pytest.mark.model
async def test_llama_cpp_answers_a_card_through_the_persona_adapter(
    on: Callable[..., Settings], persona_adapter: Path, model_path: Path
) -> None:
    from engine.backends.base import ChatMessage, GenerationRequest
    from personas.render import render_system_prompt

    settings = on(kind="llamacpp", threads=1)
    personas = load_personas(settings)
    brine = personas.cards["captain-brine"]
    backend = make_backend(settings, personas)
    await backend.start()

    def asked(adapter: str | None) -> GenerationRequest:
        return GenerationRequest(
            messages=(ChatMessage("system", render_system_prompt(brine)), ChatMessage("user", "dee: who are you?")),
            max_tokens=16,
            temperature=0.0,
            model=PERSONA_ADAPTER_NAME if adapter else settings.backend.model,
            adapter_path=adapter,
        )

    try:
        through_adapter = await backend.complete(asked(adapter_folder(brine, personas.sources.get("captain-brine"))))
        bare = await backend.complete(asked(None))
    finally:
        await backend.aclose()
    assert through_adapter.strip() and bare.strip() and through_adapter != bare


def test_the_installed_persona_adapter_is_small_and_vllm_can_serve_it() -> None:
    from personas.registry import PERSONA_ADAPTER_DIR

    if not (PERSONA_ADAPTER_DIR / "adapter_config.json").is_file():
        pytest.skip(f"no persona adapter installed at {PERSONA_ADAPTER_DIR}")
    weights = PERSONA_ADAPTER_DIR / "adapter_model.safetensors"
    assert weights.stat().st_size < 20_000_000
    assert check.main([str(PERSONA_ADAPTER_DIR)]) == 0
