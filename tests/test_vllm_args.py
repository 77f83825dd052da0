"""`costar vllm-args`: server flags derived from the installed personas' adapters."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from engine.serving.vllm_args import plan_vllm, round_up_rank
from personas.card import PersonaCard

BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"


def write_adapter(folder: Path, **config: object) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 16, **config}))
    return folder


def persona(
    name: str, adapter: str | None = None, path: Path | None = None, *, rank: int | None = None, base: str | None = None
) -> PersonaCard:
    binding = {"name": adapter, "path": str(path) if path else None, "rank": rank} if adapter else None
    return PersonaCard(name=name, model={"base": base, "adapter": binding})


def option(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def lora_modules(args: list[str]) -> list[dict[str, str]]:
    start = args.index("--lora-modules") + 1
    return [json.loads(arg) for arg in args[start:] if not arg.startswith("--")]


def test_rank_is_read_from_adapter_config_and_rounded_up_to_vllms_set(tmp_path: Path) -> None:
    pip = write_adapter(tmp_path / "pip", r=24)
    rex = write_adapter(tmp_path / "rex", r=4)
    args = plan_vllm([persona("Pip", "pip-lora", pip), persona("Rex", "rex-lora", rex)], BASE).args()
    assert option(args, "--max-lora-rank") == "32"


def test_per_module_rank_pattern_counts_as_the_real_rank(tmp_path: Path) -> None:
    pip = write_adapter(tmp_path / "pip", r=8, rank_pattern={"q_proj": 64})
    assert option(plan_vllm([persona("Pip", "pip-lora", pip)], BASE).args(), "--max-lora-rank") == "64"


def test_card_rank_wins_over_a_missing_folder(tmp_path: Path) -> None:
    plan = plan_vllm([persona("Pip", "pip-lora", tmp_path / "absent", rank=8)], BASE)
    assert plan.max_lora_rank == 8
    assert plan.warnings == ()


def test_every_adapter_is_a_json_lora_module_naming_the_base(tmp_path: Path) -> None:
    pip = write_adapter(tmp_path / "pip")
    args = plan_vllm([persona("Pip", "pip-lora", pip), persona("Narrator")], BASE).args()
    assert args[0] == BASE
    assert "--enable-lora" in args and "--enable-prefix-caching" in args
    assert lora_modules(args) == [{"name": "pip-lora", "path": str(pip.resolve()), "base_model_name": BASE}]


def test_max_loras_is_personas_active_at_once_and_cpu_loras_is_all(tmp_path: Path) -> None:
    cards = [persona(f"P{i}", f"p{i}-lora", write_adapter(tmp_path / f"p{i}")) for i in range(6)]
    args = plan_vllm(cards, BASE, max_concurrency=4).args()
    assert option(args, "--max-loras") == "4"
    assert option(args, "--max-cpu-loras") == "6"
    assert option(plan_vllm(cards, BASE, max_loras=2).args(), "--max-loras") == "2"


def test_adapters_vllm_refuses_are_left_out_with_a_warning(tmp_path: Path) -> None:
    dora = write_adapter(tmp_path / "dora", use_dora=True)
    heads = write_adapter(tmp_path / "heads", modules_to_save=["lm_head"])
    good = write_adapter(tmp_path / "good")
    plan = plan_vllm([persona("A", "a", dora), persona("B", "b", heads), persona("C", "c", good)], BASE)
    assert [a.name for a in plan.adapters] == ["c"]
    assert any("DoRA" in w for w in plan.warnings)
    assert any("lm_head" in w for w in plan.warnings)


def test_adapter_trained_for_another_base_is_left_out(tmp_path: Path) -> None:
    card = persona("Pip", "pip-lora", write_adapter(tmp_path / "pip"), base="meta-llama/Llama-3.2-1B")
    plan = plan_vllm([card], BASE)
    assert plan.adapters == ()
    assert "Llama-3.2-1B" in plan.warnings[0]
    assert "--enable-lora" not in plan.args()


def test_server_adapter_dir_rewrites_paths_for_docker(tmp_path: Path) -> None:
    pip = write_adapter(tmp_path / "pip")
    args = plan_vllm([persona("Pip", "pip-lora", pip)], BASE, server_adapter_dir="/adapters").args()
    assert lora_modules(args)[0]["path"] == "/adapters/pip"


def test_shared_adapter_is_listed_once_for_all_its_personas(tmp_path: Path) -> None:
    pip = write_adapter(tmp_path / "pip")
    plan = plan_vllm([persona("Pip", "pip-lora", pip), persona("Pip Two", "pip-lora", pip)], BASE)
    assert [(a.name, a.persona_ids) for a in plan.adapters] == [("pip-lora", ("pip", "pip-two"))]


def test_command_is_valid_shell_for_the_same_arguments(tmp_path: Path) -> None:
    plan = plan_vllm([persona("Pip", "pip-lora", write_adapter(tmp_path / "it's pip"))], BASE)
    assert shlex.split(plan.command().replace("\\\n", " ")) == ["vllm", "serve", *plan.args()]


@pytest.mark.parametrize(("rank", "allowed"), [(1, 1), (2, 8), (16, 16), (17, 32), (300, 320), (512, 512)])
def test_round_up_rank(rank: int, allowed: int) -> None:
    assert round_up_rank(rank) == allowed


def test_rank_above_vllms_largest_is_refused() -> None:
    with pytest.raises(ValueError, match="512"):
        round_up_rank(1024)


def test_served_name_differing_from_the_weights_is_passed_and_used_as_adapter_parent(tmp_path: Path) -> None:
    plan = plan_vllm(
        [persona("Pip", "pip-lora", write_adapter(tmp_path / "pip"), base="smollm2")], BASE, served_name="smollm2"
    )
    args = plan.args()
    assert option(args, "--served-model-name") == "smollm2"
    assert lora_modules(args)[0]["base_model_name"] == "smollm2"


def test_relative_adapter_path_resolves_against_the_card_file(tmp_path: Path) -> None:
    write_adapter(tmp_path / "cards" / "adapters" / "pip")
    card = PersonaCard(name="Pip", model={"adapter": {"name": "pip-lora", "path": "adapters/pip"}})
    plan = plan_vllm([card], BASE, sources={"pip": tmp_path / "cards" / "pip.yaml"})
    assert plan.adapters[0].path == str((tmp_path / "cards" / "adapters" / "pip").resolve())
    assert plan.warnings == ()


def test_cli_prints_the_command_for_installed_personas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    cards = tmp_path / "cards"
    write_adapter(cards / "adapters" / "rex", r=8)
    (cards / "rex.yaml").write_text("name: Rex\nmodel:\n  adapter:\n    name: rex-lora\n    path: adapters/rex\n")
    monkeypatch.setenv("COSTAR_PERSONAS_DIR", str(cards))
    monkeypatch.setenv("COSTAR_BACKEND_MODEL", BASE)

    assert (
        main(["--env-file", str(tmp_path / "none.env"), "vllm-args", "--format", "shell", "--server-dir", "/adapters"])
        == 0
    )
    args = shlex.split(capsys.readouterr().out)
    assert args[0] == BASE
    assert "--served-model-name" not in args
    assert option(args, "--max-model-len") == "2048"
    assert option(args, "--max-lora-rank") == "8"
    assert lora_modules(args) == [{"name": "rex-lora", "path": "/adapters/rex", "base_model_name": BASE}]
