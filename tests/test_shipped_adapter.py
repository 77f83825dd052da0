"""Pip ships with a trained LoRA adapter: bound in the card, served by `costar vllm-args` and the
embedded backend out of the box, and switched off with COSTAR_BACKEND_ADAPTERS=false."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.app import load_personas
from engine.backends.base import ChatMessage, GenerationRequest
from engine.backends.factory import make_backend
from engine.errors import BackendError
from engine.serving.adapter_paths import adapter_folder
from engine.serving.adapter_report import inspect_adapter
from engine.serving.model_names import served_model_name
from engine.serving.vllm_args import plan_from_settings
from engine.settings import Settings
from personas.registry import PersonaRegistry

MB = 1_000_000
# The cards as committed, not conftest's adapter-free copies: these tests are about the binding itself.
COMMITTED_CARDS = Path(__file__).resolve().parent.parent / "personas" / "cards"


@pytest.fixture(autouse=True)
def _the_cards_as_committed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("personas.registry.BUILTIN_CARDS_DIR", COMMITTED_CARDS)
    monkeypatch.setattr("bot.app.BUILTIN_CARDS_DIR", COMMITTED_CARDS)


def _pip_adapter(personas: PersonaRegistry) -> Path:
    pip = personas.get("pip")
    assert pip is not None
    folder = adapter_folder(pip, personas.sources.get("pip"))
    assert folder is not None, "Pip's card binds no adapter"
    return Path(folder)


def test_pips_card_binds_the_shipped_adapter_by_a_path_relative_to_the_card(settings: Settings) -> None:
    personas = load_personas(settings)
    pip = personas.get("pip")
    assert pip is not None and pip.model.adapter is not None
    assert pip.model.adapter.name == "pip-lora" and not Path(pip.model.adapter.path or "/").is_absolute()

    folder = _pip_adapter(personas)
    # The adapter and the resolved config of the run that made it (docs/finetuning.md), nothing else.
    assert sorted(path.name for path in folder.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "costar_finetune.yaml",
    ]
    assert sum(path.stat().st_size for path in folder.iterdir()) < 20 * MB
    report = inspect_adapter(folder)
    assert report.vllm_loadable, report.reasons
    assert report.rank == 16 and report.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_vllm_args_serve_pips_adapter_out_of_the_box(settings: Settings) -> None:
    personas = load_personas(settings)
    args = plan_from_settings(settings, personas).args()

    assert "--enable-lora" in args
    modules = [json.loads(arg) for arg in args[args.index("--lora-modules") + 1 :] if arg.startswith("{")]
    assert [(module["name"], Path(module["path"])) for module in modules] == [
        ("pip-lora", _pip_adapter(personas).resolve())
    ]


def test_adapters_off_runs_every_persona_on_the_bare_base_model(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(backend={"adapters": False})
    personas = load_personas(settings)

    assert all(card.model.adapter is None for card in personas.cards.values())
    assert served_model_name(personas.cards["pip"], settings.backend.model) == settings.backend.model
    assert "--enable-lora" not in plan_from_settings(settings, personas).args()


def _request(adapter: Path | None) -> GenerationRequest:
    return GenerationRequest(
        messages=(
            ChatMessage("system", "You are Pip, the cheerful green pixel sprite who co-hosts a cozy stream's chat."),
            ChatMessage("user", "wildthyme: pip what do you do when the stream is over?"),
        ),
        max_tokens=16,
        temperature=0.0,
        model="pip-lora" if adapter else "smollm2",
        adapter_path=str(adapter) if adapter else None,
    )


@pytest.mark.model
async def test_the_embedded_backend_loads_pips_adapter_at_start_and_it_changes_the_reply(
    make_settings: Callable[..., Settings], model_path: Path
) -> None:
    settings = make_settings(backend={"kind": "embedded"})
    personas = load_personas(settings)
    backend = make_backend(settings, personas)
    await backend.start()
    try:
        assert "pip-lora" in backend.model.peft_config  # type: ignore[attr-defined]  # loaded before any request
        with_adapter = await backend.complete(_request(_pip_adapter(personas)))
        without = await backend.complete(_request(None))
    finally:
        await backend.aclose()
    assert with_adapter.strip() and without.strip() and with_adapter != without


@pytest.mark.model
async def test_an_adapter_that_cannot_load_stops_the_embedded_backend_at_start(
    make_settings: Callable[..., Settings], tmp_path: Path, model_path: Path
) -> None:
    cards = tmp_path / "cards"
    (cards / "adapters").mkdir(parents=True)
    shutil.copytree(_pip_adapter(load_personas(make_settings())), cards / "adapters" / "rex")
    config = cards / "adapters" / "rex" / "adapter_config.json"
    config.write_text(config.read_text().replace('"r": 16', '"r": 32'))  # no longer matches its weights
    (cards / "rex.yaml").write_text("name: Rex\nmodel:\n  adapter: {name: rex-lora, path: adapters/rex}\n")
    settings = make_settings(core={"personas_dir": cards}, backend={"kind": "embedded"})

    backend = make_backend(settings, load_personas(settings))
    with pytest.raises(BackendError, match=r"rex-lora.*COSTAR_BACKEND_ADAPTERS=false"):
        await backend.start()
    await backend.aclose()
