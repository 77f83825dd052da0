"""Train a LoRA, QLoRA or prompt-tuning adapter for one persona with trl's SFTTrainer + peft.

Loss is computed on the character's turns only (see :mod:`finetune.tokenize`). The adapter is
saved as ``adapter_config.json`` + ``adapter_model.safetensors`` in ``--output_dir``, checked
for vLLM (:mod:`engine.serving.adapter_report`), with the resolved configuration next to it
(``costar_finetune.yaml``).

    # your character: your card and your dialogue (conversational JSONL) -> your adapter
    python -m finetune.train --preset recommended --card my_card.yaml \\
        --train_file my_train.jsonl --eval_file my_valid.jsonl --output_dir outputs/adapters/mine

    # the recommended default (all linear layers, r=16) on the shipped Pip set, CPU-sized
    python -m finetune.train --preset recommended --output_dir outputs/adapters/pip-lora \\
        --max_steps 60 --per_device_train_batch_size 2 --threads 1

    # continue the shipped Pip adapter on new data rather than starting from zero
    python -m finetune.train --preset recommended --init_adapter personas/adapters/pip --train_file more.jsonl

    # keep the checkpoint with the lowest validation loss (the shipped Pip validation split by default)
    python -m finetune.train --preset recommended --eval_strategy steps --eval_steps 50 \\
        --save_strategy steps --save_steps 50 --load_best_model_at_end true

    # the seed projects' settings
    python -m finetune.train --preset lora_seed --output_dir outputs/adapters/pip-lora-seed
    python -m finetune.train --preset prompt_tuning_seed --output_dir outputs/adapters/pip-pt
    python -m finetune.train --preset qlora --base_model meta-llama/Llama-3.1-8B-Instruct  # CUDA + bitsandbytes

    # any YAML, overridden by flags; several GPUs through accelerate
    python -m finetune.train --config my.yaml --learning_rate 1e-4 --packing true
    accelerate launch --num_processes 2 -m finetune.train --preset recommended --output_dir outputs/adapters/pip

``--help`` lists costar's own options and the trainer options most runs set; ``--help-all`` lists
every one of trl's ``SFTConfig`` options too (several hundred lines).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from finetune.config import AdapterArguments, DataArguments, build_peft_config, build_quantization_config, preset_path
from finetune.data import Conversation, read_jsonl
from finetune.errors import ConfigError, FinetuneError
from finetune.modeling import load_causal_lm, load_tokenizer, resolve_base_model
from finetune.persona import load_card, persona_text, with_card_prompts
from finetune.tokenize import IGNORE_INDEX, tokenize_conversation

__all__ = ["RESOLVED_CONFIG_NAME", "TrainResult", "build_dataset", "load_base_model", "main", "parse_args", "train"]

RESOLVED_CONFIG_NAME = "costar_finetune.yaml"

# Defaults that differ from trl's, chosen for a small model on a shared CPU. A preset or flag wins.
_DEFAULTS: dict[str, Any] = {
    "output_dir": "outputs/adapters/pip",
    "gradient_checkpointing": False,  # trl turns it on; on a 135M model it only costs time
    "save_strategy": "no",  # the adapter is saved once at the end, without checkpoints beside it
    "report_to": "none",
    "logging_steps": 5,
    # Pip's card alone renders to about 630 tokens of system prompt: 512 would cut every
    # conversation before the character says a word.
    "max_length": 1024,
    "learning_rate": 2e-4,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0,
}


@dataclass(frozen=True, slots=True)
class TrainResult:
    adapter_dir: Path
    method: str
    steps: int
    first_loss: float | None
    last_loss: float | None
    train_seconds: float
    # Set with --load_best_model_at_end: the checkpoint whose weights were saved, and its eval loss.
    best_checkpoint: str | None = None
    best_eval_loss: float | None = None


def _expand_preset(argv: list[str]) -> list[str]:
    if "--preset" not in argv:
        return argv
    index = argv.index("--preset")
    if index + 1 >= len(argv):
        raise ConfigError("--preset needs a name, e.g. --preset recommended")
    name = argv[index + 1]
    return [*argv[:index], "--config", str(preset_path(name)), *argv[index + 2 :]]


def parse_args(argv: Sequence[str] | None = None) -> tuple[AdapterArguments, DataArguments, Any]:
    import torch
    from trl import SFTConfig, TrlParser

    args = _expand_preset(list(argv if argv is not None else sys.argv[1:]))
    if any(arg in ("-h", "--help") for arg in args) and "--help-all" not in args:
        print(_short_help())
        raise SystemExit(0)
    args = ["--help" if arg == "--help-all" else arg for arg in args]
    asks_for_help = "--help" in args
    # The method first: SFTConfig itself refuses a QLoRA preset's bf16 on a CPU with a less useful message.
    # (Not for --help: this first parser knows only the adapter options and would list just those.)
    method = "" if asks_for_help else _method(args)
    if method == "qlora" and not torch.cuda.is_available():
        raise ConfigError("qlora needs a CUDA GPU (bitsandbytes 4-bit); use --method lora on the CPU")
    parser = TrlParser((AdapterArguments, DataArguments, SFTConfig))
    bf16 = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    parser.set_defaults(**_DEFAULTS, bf16=bf16)
    adapter_args, data_args, sft_config = parser.parse_args_and_config(args)
    if adapter_args.method == "prompt_tuning" and sft_config.packing:
        raise ConfigError("packing is not supported with prompt_tuning: the virtual tokens belong to each sequence")
    return adapter_args, data_args, sft_config


# The trainer's options (trl's SFTConfig, several hundred) that most runs set; --help-all lists all.
_COMMON_TRAINER_OPTIONS = (
    "output_dir",
    "max_steps",
    "num_train_epochs",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "learning_rate",
    "max_length",
    "packing",
    "eval_strategy",
    "eval_steps",
    "save_strategy",
    "save_steps",
    "load_best_model_at_end",
    "logging_steps",
    "seed",
)


def _short_help() -> str:
    """costar's options (adapter, data), then the common trainer ones with costar's defaults."""
    import dataclasses

    from trl import SFTConfig, TrlParser

    parser = TrlParser(
        (AdapterArguments, DataArguments),
        prog="python -m finetune.train",
        description="Train an adapter for one persona: your card + your dialogue -> your adapter.",
        epilog="--help-all lists every trainer option (trl's SFTConfig); --config FILE.yaml reads options "
        "from a file, flags override it. Examples: docs/finetuning.md.",
    )
    trainer = parser.add_argument_group("common trainer options (trl's SFTConfig)")
    fields = {field.name: field for field in dataclasses.fields(SFTConfig)}
    for name in _COMMON_TRAINER_OPTIONS:
        field = fields[name]
        default = _DEFAULTS.get(name, field.default)
        first_sentence = str(field.metadata.get("help", "")).split(". ")[0].rstrip(".")
        trainer.add_argument(f"--{name}", default=default, help=first_sentence.replace("%", "%%"))
    return parser.format_help()


def _method(args: list[str]) -> str:
    from trl import TrlParser

    parsed = TrlParser((AdapterArguments,)).parse_args_and_config(list(args), return_remaining_strings=True)
    return str(parsed[0].method)


def _conversations(path: str, default_card: str, limit: int | None = None) -> list[Conversation]:
    return with_card_prompts(read_jsonl(path)[:limit], path, default_card)


def build_dataset(conversations: list[Conversation], tokenizer: Any, max_length: int | None) -> Any:
    """A ``datasets.Dataset`` of ``input_ids`` + ``labels``; trl trains on it as pre-tokenized."""
    from datasets import Dataset

    rows = []
    for conversation in conversations:
        tokens = tokenize_conversation(tokenizer, conversation.chat(), max_length)
        if any(label != IGNORE_INDEX for label in tokens.labels):
            rows.append({"input_ids": tokens.input_ids, "labels": tokens.labels})
    if not rows:
        raise ConfigError(_too_short_message(conversations, tokenizer, max_length))
    return Dataset.from_list(rows)


def _too_short_message(conversations: list[Conversation], tokenizer: Any, max_length: int | None) -> str:
    """Both lengths and the fix: where the earliest character turn ends, against max_length."""
    ends = []
    for conversation in conversations[:50]:  # enough to find the shortest; tokenizing is not free
        labels = tokenize_conversation(tokenizer, conversation.chat()).labels
        end = next((position for position, label in enumerate(labels) if label != IGNORE_INDEX), None)
        if end is not None:
            while end < len(labels) and labels[end] != IGNORE_INDEX:
                end += 1  # to the end of that first character turn
            ends.append(end)
    if not ends:
        return "no conversation has a character turn at all; check the data file's roles"
    needed = min(ends)
    suggestion = 1 << (needed - 1).bit_length()
    return (
        f"no conversation has a character turn within max_length={max_length}: the earliest character turn "
        f"ends at token {needed} (the card's system prompt comes first); pass --max_length {suggestion} "
        "or a shorter --card"
    )


def load_base_model(model_path: str, method: str, sft_config: Any) -> Any:
    import torch

    if method != "qlora":
        return load_causal_lm(model_path, dtype=torch.bfloat16 if sft_config.bf16 else torch.float32)
    # Only this branch needs bitsandbytes, which exists on GPU machines alone.
    from peft import prepare_model_for_kbit_training

    model = load_causal_lm(
        model_path,
        dtype=torch.bfloat16,
        quantization_config=build_quantization_config(),
        device_map={"": sft_config.local_process_index},
    )
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=sft_config.gradient_checkpointing)


def _losses(log_history: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    losses = [entry["loss"] for entry in log_history if "loss" in entry]
    return (losses[0], losses[-1]) if losses else (None, None)


def train(adapter_args: AdapterArguments, data_args: DataArguments, sft_config: Any) -> TrainResult:
    import torch

    threads_before = torch.get_num_threads()
    if adapter_args.threads:
        torch.set_num_threads(adapter_args.threads)
    try:
        return _train(adapter_args, data_args, sft_config)
    finally:
        torch.set_num_threads(threads_before)  # the setting is process-wide; leave it as found


def _train(adapter_args: AdapterArguments, data_args: DataArguments, sft_config: Any) -> TrainResult:
    from trl import SFTTrainer

    model_path = resolve_base_model(adapter_args.base_model)
    tokenizer = load_tokenizer(model_path)
    card = load_card(data_args.card)
    train_set = build_dataset(
        _conversations(data_args.train_file, data_args.card, data_args.max_train_conversations),
        tokenizer,
        sft_config.max_length,
    )
    eval_set = (
        build_dataset(_conversations(data_args.eval_file, data_args.card), tokenizer, sft_config.max_length)
        if data_args.eval_file
        else None
    )
    model = load_base_model(model_path, adapter_args.method, sft_config)
    peft_config = build_peft_config(adapter_args, model_path, persona_text(card))
    if adapter_args.init_adapter:
        from peft import PeftModel

        # The saved adapter's weights and config carry on; an fp16 copy (as shipped) is cast up to
        # the base model's dtype by peft (autocast_adapter_dtype), so training stays in fp32.
        model = PeftModel.from_pretrained(model, adapter_args.init_adapter, is_trainable=True)
        peft_config = None
    trainer = SFTTrainer(
        model=model,
        args=sft_config,
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    first, last = _losses(trainer.state.log_history)
    adapter_dir = Path(sft_config.output_dir)
    best = trainer.state.best_model_checkpoint if sft_config.load_best_model_at_end else None
    result = TrainResult(
        adapter_dir,
        adapter_args.method,
        trainer.state.global_step,
        first,
        last,
        seconds,
        best_checkpoint=Path(best).name if best else None,
        best_eval_loss=trainer.state.best_metric if best else None,
    )
    if trainer.is_world_process_zero():
        # save_embedding_layers=False: we never train embeddings, and "auto" looks the base up on the Hub.
        trainer.model.save_pretrained(adapter_dir, save_embedding_layers=False)
        save_resolved_config(adapter_dir, adapter_args, data_args, sft_config, result, model_path)
    return result


def save_resolved_config(
    adapter_dir: Path,
    adapter_args: AdapterArguments,
    data_args: DataArguments,
    sft_config: Any,
    result: TrainResult,
    model_path: str,
) -> Path:
    import yaml

    resolved = {
        "adapter": asdict(adapter_args),
        "data": asdict(data_args),
        "base_model_path": model_path,
        "training": {key: value for key, value in sft_config.to_dict().items() if _plain(value)},
        "result": {
            "steps": result.steps,
            "first_loss": result.first_loss,
            "last_loss": result.last_loss,
            "train_seconds": round(result.train_seconds, 2),
            "best_checkpoint": result.best_checkpoint,
            "best_eval_loss": result.best_eval_loss,
        },
    }
    path = adapter_dir / RESOLVED_CONFIG_NAME
    path.write_text(yaml.safe_dump(resolved, sort_keys=False), encoding="utf-8")
    return path


def _plain(value: Any) -> bool:
    return (
        value is None
        or isinstance(value, (str, int, float, bool))
        or (
            isinstance(value, (list, dict))
            and all(_plain(item) for item in (value.values() if isinstance(value, dict) else value))
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    from engine.serving.adapter_report import inspect_adapter

    try:
        adapter_args, data_args, sft_config = parse_args(argv)
        result = train(adapter_args, data_args, sft_config)
    except FinetuneError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(
        f"trained {result.method} for {result.steps} steps in {result.train_seconds:.1f}s: "
        f"loss {result.first_loss} → {result.last_loss}; adapter in {result.adapter_dir}"
    )
    if result.best_checkpoint:
        print(f"saved the weights of {result.best_checkpoint} (eval loss {result.best_eval_loss:.4f})")
    report = inspect_adapter(result.adapter_dir)
    print(report.verdict())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
