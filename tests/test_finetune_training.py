"""Real training on the CPU: SmolLM2-135M-Instruct, the shipped Pip set, a few dozen steps.

The short test card keeps each conversation near 180 tokens so the whole module stays within a
few minutes on two cores. Two torch threads: `make test` runs the suite serially, so both cores
are free (on a machine busy with other work, OpenMP threads spin; 1 thread is then faster).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.serving.adapter_report import inspect_adapter
from finetune.data import read_jsonl, shipped_split, with_system_prompt, write_jsonl
from finetune.evaluate import main as evaluate_main
from finetune.evaluate import perplexity
from finetune.modeling import load_causal_lm, load_tokenizer, resolve_base_model
from finetune.persona import load_card, system_prompt
from finetune.tokenize import tokenize_conversation
from finetune.train import RESOLVED_CONFIG_NAME, TrainResult, parse_args, train

pytestmark = [pytest.mark.slow, pytest.mark.model]

SMALL_CARD = Path(__file__).parent / "data" / "pip_small_card.yaml"
COMMON = [
    "--card",
    str(SMALL_CARD),
    "--max_length",
    "256",
    "--eval_file",
    "none",
    "--threads",
    str(min(2, os.cpu_count() or 1)),
    "--disable_tqdm",
    "true",
]


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    out = tmp_path_factory.mktemp("lora") / "pip-lora"
    return train(
        *parse_args(
            [
                "--preset",
                "recommended",
                *COMMON,
                "--output_dir",
                str(out),
                "--max_steps",
                "24",
                "--per_device_train_batch_size",
                "2",
                "--learning_rate",
                "2e-3",
                "--logging_steps",
                "4",
                "--warmup_steps",
                "0",
            ]
        )
    )


@pytest.fixture(scope="module")
def heldout() -> list:
    prompt = system_prompt(load_card(SMALL_CARD))
    return [with_system_prompt(c, prompt) for c in read_jsonl(shipped_split("heldout"))]


def test_lora_training_lowers_the_training_loss(lora_run: TrainResult) -> None:
    assert lora_run.steps == 24
    assert lora_run.last_loss is not None and lora_run.first_loss is not None
    assert lora_run.last_loss < lora_run.first_loss


def test_the_lora_adapter_is_saved_for_vllm_with_its_resolved_config(lora_run: TrainResult) -> None:
    report = inspect_adapter(lora_run.adapter_dir)
    assert report.vllm_loadable, report.reasons
    assert report.rank == 16 and report.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    resolved = (lora_run.adapter_dir / RESOLVED_CONFIG_NAME).read_text(encoding="utf-8")
    assert "learning_rate: 0.002" in resolved and "lora_r: 16" in resolved and "last_loss:" in resolved
    assert not list(lora_run.adapter_dir.glob("tokenizer*"))  # the base vocabulary, untouched


def test_the_reloaded_adapter_has_lower_heldout_perplexity_than_the_base(lora_run: TrainResult, heldout: list) -> None:
    from peft import PeftModel

    model_path = resolve_base_model("smollm2")
    tokenizer = load_tokenizer(model_path)
    base = perplexity(load_causal_lm(model_path).eval(), tokenizer, heldout, 256)
    tuned = perplexity(
        PeftModel.from_pretrained(load_causal_lm(model_path), str(lora_run.adapter_dir)).eval(), tokenizer, heldout, 256
    )
    assert tuned < base


def test_training_can_continue_the_shipped_adapter_instead_of_starting_a_new_one(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    shipped = Path(__file__).parents[1] / "personas" / "adapters" / "pip"
    out = tmp_path / "continued"
    steps = "--max_steps 2 --per_device_train_batch_size 2 --learning_rate 2e-3 --logging_steps 1 --warmup_steps 0"
    continued = train(
        *parse_args(
            [
                "--preset",
                "recommended",
                *COMMON,
                "--output_dir",
                str(out),
                "--init_adapter",
                str(shipped),
                *steps.split(),
            ]
        )
    )

    # A new adapter starts as the bare base model (loss about 4.2 on this set, docs/finetuning.md); this one
    # starts where the shipped adapter is (about 2.3).
    assert continued.first_loss is not None and continued.first_loss < 3.0
    before, after = load_file(shipped / "adapter_model.safetensors"), load_file(out / "adapter_model.safetensors")
    assert before.keys() == after.keys() and any(not before[name].float().equal(after[name].float()) for name in before)
    assert inspect_adapter(out).vllm_loadable


def test_with_a_validation_split_the_adapter_saved_is_the_checkpoint_with_the_lowest_eval_loss(
    tmp_path: Path,
) -> None:
    import json

    import yaml
    from safetensors.torch import load_file

    valid = tmp_path / "valid.jsonl"
    write_jsonl(read_jsonl(shipped_split("valid"))[:4], valid)
    out = tmp_path / "pip-lora"
    # A learning rate far too high for a constant schedule: training diverges (eval loss about 10
    # after the first step, 80 after the fourth; seeded, so the same on every run), and the best
    # checkpoint is the first, not the last.
    diverging = "--max_steps 4 --per_device_train_batch_size 2 --learning_rate 5e-2 --lr_scheduler_type constant --warmup_steps 0"
    every_step = "--eval_strategy steps --eval_steps 1 --save_strategy steps --save_steps 1"
    args = ["--preset", "recommended", *COMMON, "--eval_file", str(valid), "--output_dir", str(out)]
    result = train(*parse_args([*args, *diverging.split(), *every_step.split(), "--load_best_model_at_end", "true"]))

    history = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text(encoding="utf-8"))["log_history"]
    eval_losses = {f"checkpoint-{entry['step']}": entry["eval_loss"] for entry in history if "eval_loss" in entry}
    assert len(eval_losses) == 4 and result.best_checkpoint == min(eval_losses, key=eval_losses.__getitem__)
    assert result.best_checkpoint != "checkpoint-4"
    saved, best = (
        load_file(out / "adapter_model.safetensors"),
        load_file(out / result.best_checkpoint / "adapter_model.safetensors"),
    )
    assert saved.keys() == best.keys() and all(saved[name].equal(best[name]) for name in best)
    resolved = yaml.safe_load((out / RESOLVED_CONFIG_NAME).read_text(encoding="utf-8"))["result"]
    assert resolved["best_checkpoint"] == result.best_checkpoint
    assert resolved["best_eval_loss"] == pytest.approx(eval_losses[result.best_checkpoint])


def test_a_set_whose_lines_name_their_own_cards_trains_and_evaluates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "pip.yaml").write_text(SMALL_CARD.read_text(encoding="utf-8"), encoding="utf-8")
    (cards / "gruk.yaml").write_text("name: Gruk\ndescription: A gentle cave troll who writes poems.\n", "utf-8")
    conversations = read_jsonl(shipped_split("valid"))[:4]
    lined = [c.model_copy(update={"card": f"cards/{('pip', 'gruk')[n % 2]}.yaml"}) for n, c in enumerate(conversations)]
    data = tmp_path / "train.jsonl"
    write_jsonl(lined, data)
    out = tmp_path / "lined"
    steps = "--max_steps 2 --per_device_train_batch_size 2 --warmup_steps 0"
    result = train(
        *parse_args(
            ["--preset", "recommended", *COMMON, "--train_file", str(data), "--output_dir", str(out), *steps.split()]
        )
    )
    assert result.steps == 2 and inspect_adapter(out).vllm_loadable

    evaluate_main(
        [
            "--adapter",
            f"lined={out}",
            "--data",
            str(data),
            "--limit",
            "2",
            "--max-new-tokens",
            "4",
            "--out",
            str(tmp_path / "report"),
        ]
    )
    assert "\n| lined |" in capsys.readouterr().out


def test_the_evaluate_command_prints_the_papers_table(
    lora_run: TrainResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evaluate_main(
        [
            "--adapter",
            f"lora={lora_run.adapter_dir}",
            "--card",
            str(SMALL_CARD),
            "--limit",
            "2",
            "--max-new-tokens",
            "6",
            "--out",
            str(tmp_path),
        ]
    )

    out = capsys.readouterr().out
    assert "| Model config | BLEU | METEOR | Perplexity ↓ | MC accuracy |" in out
    assert "\n| base |" in out and "\n| lora |" in out
    assert {path.name for path in tmp_path.iterdir()} == {"report.md", "report.json", "report.png"}


def test_prompt_tuning_trains_and_saves_virtual_tokens_moved_from_the_persona_text(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    out = tmp_path / "pip-pt"
    result = train(
        *parse_args(
            [
                "--preset",
                "prompt_tuning_seed",
                *COMMON,
                "--output_dir",
                str(out),
                "--max_steps",
                "4",
                "--per_device_train_batch_size",
                "2",
                "--learning_rate",
                "3e-2",
                "--logging_steps",
                "1",
            ]
        )
    )

    assert result.steps == 4 and result.last_loss == result.last_loss  # trained, finite
    report = inspect_adapter(out)
    assert report.peft_type == "PROMPT_TUNING" and not report.vllm_loadable  # served by the embedded backend only
    [prompt] = load_file(str(out / "adapter_model.safetensors")).values()
    assert prompt.shape == (20, 576)

    from peft import PeftConfig

    config = PeftConfig.from_pretrained(str(out))
    tokenizer = load_tokenizer(resolve_base_model("smollm2"))
    init_ids = tokenizer(config.prompt_tuning_init_text)["input_ids"][:20]
    embeddings = load_causal_lm(resolve_base_model("smollm2")).get_input_embeddings().weight[init_ids].detach()
    assert not prompt[: len(init_ids)].allclose(embeddings)  # training moved them away from the initial text


# -- the same adapter on llama.cpp -----------------------------------------------------------------


def _next_token_choices(logits) -> list[int]:
    return [int(row.argmax()) for row in logits]


def test_the_gguf_export_predicts_like_the_peft_model_and_far_better_than_the_base(
    lora_run: TrainResult, heldout: list, tmp_path: Path
) -> None:
    """Where the adapter changes the PEFT model's next token, llama.cpp with the export follows it; the base does not."""
    import torch
    from llama_cpp import Llama
    from peft import PeftModel

    from engine.backends.llama_adapters import LlamaAdapters
    from engine.serving.model_store import find_smollm2_gguf
    from finetune.export_gguf import main as export_main

    exported = tmp_path / "pip-lora.gguf"
    assert export_main([str(lora_run.adapter_dir), "--out", str(exported)]) == 0
    model_path = resolve_base_model("smollm2")
    tokenizer = load_tokenizer(model_path)
    peft_model = PeftModel.from_pretrained(load_causal_lm(model_path), str(lora_run.adapter_dir)).eval()
    llm = Llama(str(find_smollm2_gguf()), n_ctx=512, logits_all=True, verbose=False, n_threads=1)
    adapters = LlamaAdapters(tmp_path, find_smollm2_gguf())
    adapters.attach(llm)

    def llama_choices(ids: list[int], adapter: str | None) -> list[int]:
        adapters.activate(adapter)  # switched on the loaded base model, never reloaded
        llm.reset()
        llm.eval(ids)
        return _next_token_choices(llm.scores[: len(ids)])

    # Positions where the adapter changes the PEFT model's choice: there the base model is wrong by
    # construction, and only a faithful export can be right.
    agree = {"adapted": 0, "base": 0}
    positions = 0
    for conversation in heldout[:4]:
        ids = tokenize_conversation(tokenizer, conversation.chat(), 256).input_ids
        with torch.inference_mode():
            reference = _next_token_choices(peft_model(torch.tensor([ids])).logits[0])
            with peft_model.disable_adapter():
                unadapted = _next_token_choices(peft_model(torch.tensor([ids])).logits[0])
        changed = [index for index, (a, b) in enumerate(zip(reference, unadapted, strict=True)) if a != b]
        for name, adapter in (("adapted", str(exported)), ("base", None)):
            choices = llama_choices(ids, adapter)
            agree[name] += sum(choices[index] == reference[index] for index in changed)
        positions += len(changed)
    adapted, base = agree["adapted"] / positions, agree["base"] / positions
    print(
        f"\n{positions} next-token choices the adapter changes; llama.cpp matches PEFT on {adapted:.3f} adapted, {base:.3f} base"
    )
    assert positions >= 20  # the trained adapter really changes the model's choices
    assert adapted >= 0.6
    assert adapted - base >= 0.5
