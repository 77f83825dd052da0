"""Training throughput with and without packing: real tokens per second and the share of padding.

Trains the recommended LoRA (all-linear, r=16) on the shipped Pip set for a few steps twice —
once with plain padded batches, once with trl's best-fit-decreasing packing (padding-free) —
and counts, in the batches the trainer really consumed, how many positions were real tokens
and how many were padding.

    python bench/train_throughput.py                                  # SmolLM2, the shipped Pip card
    python bench/train_throughput.py --steps 3 --batch 4 --threads 1  # on a busy shared CPU
    python bench/train_throughput.py --model tiny-random              # pipeline only, seconds
    python bench/train_throughput.py --model smollm2 --device-note "H100"  # on a GPU machine

The last line reads ``RESULT tokens_per_s=… padding_share_unpacked=… padding_share_packed=…``
(tokens_per_s is the packed run's; target: padding_share_packed < 0.05).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.inputs import require_inputs
from finetune.config import AdapterArguments, build_peft_config
from finetune.data import read_jsonl, shipped_split, with_system_prompt
from finetune.modeling import load_causal_lm, load_tokenizer, resolve_base_model
from finetune.persona import DEFAULT_CARD, load_card, persona_text, system_prompt
from finetune.train import build_dataset


@dataclass
class Run:
    mode: str
    steps: int = 0
    real_tokens: int = 0
    positions: int = 0
    seconds: float = 0.0

    @property
    def padding_share(self) -> float:
        return 1 - self.real_tokens / self.positions if self.positions else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.real_tokens / self.seconds if self.seconds else 0.0


class CountingCollator:
    """Wraps the trainer's collator and counts real and padded positions of every batch."""

    def __init__(self, collator: Any, pad_token_id: int, run: Run) -> None:
        self.collator, self.pad_token_id, self.run = collator, pad_token_id, run

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collator(examples)
        self.run.positions += batch["input_ids"].numel()
        if "attention_mask" in batch:
            self.run.real_tokens += int(batch["attention_mask"].sum())
        else:  # padding-free: one row of concatenated sequences, nothing padded
            self.run.real_tokens += batch["input_ids"].numel()
        return batch


def _tiny_random_model(tokenizer: Any) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config)


def measure(mode: str, args: argparse.Namespace, model_path: str, tokenizer: Any, dataset: Any, card_text: str) -> Run:
    from trl import SFTConfig, SFTTrainer

    run = Run(mode)
    model = _tiny_random_model(tokenizer) if args.model == "tiny-random" else load_causal_lm(model_path)
    with tempfile.TemporaryDirectory() as scratch:
        config = SFTConfig(
            output_dir=scratch,
            max_steps=args.steps,
            per_device_train_batch_size=args.batch,
            max_length=args.max_length,
            packing=mode == "packed",
            learning_rate=2e-4,
            gradient_checkpointing=False,
            save_strategy="no",
            report_to="none",
            logging_steps=args.steps,
            bf16=args.bf16,
            disable_tqdm=True,
            seed=0,
        )
        trainer = SFTTrainer(
            model=model,
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=build_peft_config(AdapterArguments(), model_path, card_text),
        )
        trainer.data_collator = CountingCollator(trainer.data_collator, tokenizer.pad_token_id, run)
        started = time.perf_counter()
        trainer.train()
        run.seconds = time.perf_counter() - started
        run.steps = trainer.state.global_step
    return run


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", default="smollm2", help="'smollm2', a folder/Hub id, or 'tiny-random' (a 2-layer Llama)"
    )
    parser.add_argument("--card", default=str(DEFAULT_CARD), help="persona card rendered into the system turn")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--bf16", action="store_true", help="bf16 mixed precision (GPU)")
    parser.add_argument("--device-note", default="", help="free text printed with the table, e.g. the GPU's name")
    return parser


def main() -> None:
    import torch

    parser = _parser()
    args = parser.parse_args()
    require_inputs(parser, {"--card": args.card})
    if args.threads:
        torch.set_num_threads(args.threads)
    model_path = resolve_base_model("smollm2" if args.model == "tiny-random" else args.model)
    tokenizer = load_tokenizer(model_path)
    card = load_card(args.card)
    conversations = [with_system_prompt(c, system_prompt(card)) for c in read_jsonl(shipped_split("train"))]
    dataset = build_dataset(conversations, tokenizer, args.max_length)
    runs = [measure(mode, args, model_path, tokenizer, dataset, persona_text(card)) for mode in ("unpacked", "packed")]
    device = "cuda" if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    print(f"model={args.model} device={device} {args.device_note} batch={args.batch} max_length={args.max_length}")
    print(f"{'mode':<10}{'steps':>6}{'real tokens':>13}{'positions':>11}{'padding':>9}{'seconds':>9}{'tokens/s':>10}")
    for run in runs:
        print(
            f"{run.mode:<10}{run.steps:>6}{run.real_tokens:>13}{run.positions:>11}{run.padding_share:>9.3f}{run.seconds:>9.1f}{run.tokens_per_s:>10.1f}"
        )
    unpacked, packed = runs
    print(
        f"RESULT tokens_per_s={packed.tokens_per_s:.1f} tokens_per_s_unpacked={unpacked.tokens_per_s:.1f} "
        f"padding_share_unpacked={unpacked.padding_share:.3f} padding_share_packed={packed.padding_share:.3f}"
    )


if __name__ == "__main__":
    main()
