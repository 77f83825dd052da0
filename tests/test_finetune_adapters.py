"""The vLLM adapter check and registering an adapter in a persona card."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.serving.adapter_paths import adapter_folder
from engine.serving.adapter_report import inspect_adapter
from finetune.check import main as check_main
from finetune.errors import AdapterRejected
from finetune.register import register_adapter
from personas.loader import load_card
from personas.registry import PersonaRegistry

# The shipped card's model block, whatever a user bound there since (the test must not care).
_PRISTINE_MODEL = re.compile(r"^model:\n(?:[ \t].*\n)*", re.MULTILINE)

LORA_KEYS = (
    "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
    "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
)


def _adapter(folder: Path, keys: tuple[str, ...] = LORA_KEYS, **config: Any) -> Path:
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    base = {
        "peft_type": "LORA",
        "r": 16,
        "lora_alpha": 32,
        "target_modules": ["q_proj"],
        "modules_to_save": None,
        "use_dora": False,
        "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct",
    }
    (folder / "adapter_config.json").write_text(json.dumps({**base, **config}), encoding="utf-8")
    save_file({key: torch.zeros(2, 2) for key in keys}, str(folder / "adapter_model.safetensors"))
    return folder


def test_a_plain_lora_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _adapter(tmp_path / "ok")
    assert check_main([str(folder)]) == 0
    assert "OK:" in capsys.readouterr().out and inspect_adapter(folder).rank == 16


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"r": 12}, "rank r=12 is not one vLLM accepts"),
        ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
        ({"use_dora": True}, "DoRA"),
        ({"peft_type": "PROMPT_TUNING"}, "vLLM serves LoRA adapters only"),
        ({"rank_pattern": {"q_proj": 24}}, "rank_pattern uses ranks [24]"),
    ],
)
def test_the_check_refuses_what_vllm_refuses_and_says_why(
    tmp_path: Path, config: dict[str, Any], reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _adapter(tmp_path / "bad", **config)
    assert check_main([str(folder)]) == 1
    out = capsys.readouterr().out
    assert "REFUSED" in out and reason in out


def test_the_check_refuses_added_tokens_trained_embeddings_and_pickle_weights(tmp_path: Path) -> None:
    tokens = _adapter(tmp_path / "tokens")
    (tokens / "added_tokens.json").write_text('{"<pip>": 49152}', encoding="utf-8")
    embeddings = _adapter(tmp_path / "embeddings", keys=(*LORA_KEYS, "base_model.model.model.embed_tokens.weight"))
    pickled = _adapter(tmp_path / "pickled")
    (pickled / "adapter_model.safetensors").rename(pickled / "adapter_model.bin")

    assert "added_tokens.json" in " ".join(inspect_adapter(tokens).reasons)
    assert "embedding/lm_head" in " ".join(inspect_adapter(embeddings).reasons)
    assert "adapter_model.bin found instead" in " ".join(inspect_adapter(pickled).reasons)
    assert "no adapter_config.json" in " ".join(inspect_adapter(tmp_path / "missing").reasons)


def _card(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pip.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_registering_appends_the_binding_and_keeps_every_other_field_and_comment(tmp_path: Path) -> None:
    card = _card(
        tmp_path, "# Pip, our co-host\nname: Pip\nfacts: [I live in the overlay.]\nstyle:\n  max_reply_chars: 200\n"
    )
    folder = _adapter(tmp_path / "pip-lora")

    register_adapter(folder, card, name="pip-lora")

    loaded = load_card(card)
    adapter = loaded.model.adapter
    assert adapter is not None and adapter.name == "pip-lora"
    assert adapter.path == "pip-lora" and adapter.rank == 16  # relative to the card
    assert loaded.facts == ["I live in the overlay."] and loaded.style.max_reply_chars == 200
    assert card.read_text(encoding="utf-8").startswith("# Pip, our co-host\n")


def test_registering_replaces_an_existing_binding_and_keeps_the_base_model(tmp_path: Path) -> None:
    card = _card(
        tmp_path,
        "name: Pip\nmodel:\n  base: HuggingFaceTB/SmolLM2-135M-Instruct\n  adapter: {name: old, path: /old, rank: 8}\ntags: [default]\n",
    )
    register_adapter(_adapter(tmp_path / "new"), card)

    data = yaml.safe_load(card.read_text(encoding="utf-8"))
    assert data["model"] == {
        "base": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "adapter": {"name": "new", "path": "new", "rank": 16},
    }
    assert data["tags"] == ["default"]


def test_registering_refuses_an_adapter_vllm_cannot_serve_and_leaves_the_card_alone(tmp_path: Path) -> None:
    card = _card(tmp_path, "name: Pip\n")
    with pytest.raises(AdapterRejected, match="modules_to_save"):
        register_adapter(_adapter(tmp_path / "bad", modules_to_save=["lm_head"]), card)
    assert card.read_text(encoding="utf-8") == "name: Pip\n"


def test_a_prompt_tuning_adapter_can_be_bound_for_the_embedded_backend_only(tmp_path: Path) -> None:
    card = _card(tmp_path, "name: Pip\n")
    binding = register_adapter(_adapter(tmp_path / "pt", peft_type="PROMPT_TUNING"), card, embedded_only=True)
    assert binding == {"name": "pt", "path": "pt"}  # no rank: not a LoRA


def test_registering_into_a_commented_card_changes_only_the_model_block(tmp_path: Path) -> None:
    from personas.registry import BUILTIN_CARDS_DIR

    shipped = (BUILTIN_CARDS_DIR / "pip.yaml").read_text(encoding="utf-8")
    original = _PRISTINE_MODEL.sub("model:\n  base: null  # the configured default\n  adapter: null\n", shipped)
    (tmp_path / "cards").mkdir()
    card = _card(tmp_path / "cards", original)
    register_adapter(_adapter(tmp_path / "outputs" / "pip-lora"), card, name="pip-lora")

    written = card.read_text(encoding="utf-8")
    before, after = original.split("model:\n"), written.split("model:\n")
    assert after[0] == before[0]  # every line above the block, comments included, byte for byte
    assert after[1].split("tags:")[1] == before[1].split("tags:")[1]  # and every line below it
    assert "  base: null  # the configured default\n" in written
    assert "    path: ../outputs/pip-lora\n" in written
    registry = PersonaRegistry.from_dirs([card.parent])
    folder = adapter_folder(registry.cards["pip"], registry.sources["pip"])
    assert folder is not None and Path(folder).resolve() == (tmp_path / "outputs" / "pip-lora").resolve()
