"""Training configuration: dataclasses with help text, read by trl's ``TrlParser``.

Three groups go to the parser: :class:`AdapterArguments` (what to train), :class:`DataArguments`
(on what) and trl's own ``SFTConfig`` (how: learning rate, batch size, packing, max_length, …).
A YAML file given with ``--config`` (or a shipped one with ``--preset``) sets defaults; flags on
the command line override it.

Nothing here imports bitsandbytes: the QLoRA quantisation config is built from transformers'
``BitsAndBytesConfig``, which only needs bitsandbytes when a model is actually loaded with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune.data import shipped_split
from finetune.errors import ConfigError
from finetune.persona import DEFAULT_CARD
from personas.card import VLLM_LORA_RANKS

__all__ = [
    "METHODS",
    "PRESETS_DIR",
    "AdapterArguments",
    "DataArguments",
    "build_peft_config",
    "build_quantization_config",
    "preset_path",
]

METHODS = ("lora", "qlora", "prompt_tuning")
PRESETS_DIR = Path(__file__).parent / "presets"


@dataclass
class AdapterArguments:
    preset: str | None = field(
        default=None,
        metadata={
            "help": "A shipped configuration from finetune/presets/ (recommended, lora_seed, prompt_tuning_seed, "
            "qlora, lora_r_equals_alpha); same as --config with its file. Flags override it."
        },
    )
    base_model: str = field(
        default="smollm2",
        metadata={"help": "Base model: 'smollm2' (the built-in SmolLM2-135M-Instruct), a local folder, or a Hub id."},
    )
    method: str = field(
        default="lora",
        metadata={
            "help": "What to train: 'lora', 'qlora' (4-bit NF4 base, CUDA only) or 'prompt_tuning'.",
            "choices": list(METHODS),
        },
    )
    lora_r: int = field(default=16, metadata={"help": f"LoRA rank; vLLM serves only {VLLM_LORA_RANKS}."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (the update is scaled by alpha/r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["all-linear"],
        metadata={"help": "Modules that get LoRA weights: 'all-linear' (recommended) or names such as q_proj v_proj."},
    )
    num_virtual_tokens: int = field(default=20, metadata={"help": "prompt_tuning: number of trained virtual tokens."})
    threads: int | None = field(
        default=None,
        metadata={
            "help": "CPU threads for torch (default: torch's choice). On a busy shared machine 1 is often "
            "several times faster: OpenMP threads spin-wait on cores other processes hold."
        },
    )
    prompt_tuning_init_text: str | None = field(
        default=None,
        metadata={
            "help": "prompt_tuning: text the virtual tokens start from; default: the persona card's description."
        },
    )
    init_adapter: str | None = field(
        default=None,
        metadata={
            "help": "Continue training this saved adapter (a folder with adapter_config.json, e.g. "
            "personas/adapters/pip) instead of starting a new one; its own config (method, rank, targets) "
            "applies and the lora_* / num_virtual_tokens flags are ignored."
        },
    )

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {METHODS}, not {self.method!r}")
        if self.method != "prompt_tuning" and self.lora_r not in VLLM_LORA_RANKS:
            raise ConfigError(f"lora_r={self.lora_r}: vLLM only serves LoRA ranks {VLLM_LORA_RANKS}; pick one of them")
        if self.num_virtual_tokens < 1:
            raise ConfigError("num_virtual_tokens must be at least 1")
        if self.init_adapter and not (Path(self.init_adapter) / "adapter_config.json").is_file():
            raise ConfigError(
                f"init_adapter {self.init_adapter}: no adapter_config.json there; give a saved adapter folder"
            )


@dataclass
class DataArguments:
    train_file: str = field(
        default=str(shipped_split("train")),
        metadata={"help": "Conversational JSONL to train on (see finetune/data.py); default: the shipped Pip set."},
    )
    eval_file: str | None = field(
        default=str(shipped_split("valid")),
        metadata={
            "help": "Validation JSONL for the eval loss during training and --load_best_model_at_end; "
            "never the held-out test split; 'none' to skip."
        },
    )
    card: str = field(
        default=str(DEFAULT_CARD),
        metadata={"help": "Persona card; conversations without a system turn get it rendered as serving renders it."},
    )
    max_train_conversations: int | None = field(default=None, metadata={"help": "Use at most this many conversations."})

    def __post_init__(self) -> None:
        if self.eval_file in ("", "none", "None"):
            self.eval_file = None


def preset_path(name: str) -> Path:
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.exists():
        available = ", ".join(sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")))
        raise ConfigError(f"no preset {name!r}; available: {available}")
    return path


def build_peft_config(args: AdapterArguments, tokenizer_path: str, init_text: str) -> Any:
    from peft import LoraConfig, PromptTuningConfig, PromptTuningInit, TaskType

    if args.method == "prompt_tuning":
        return PromptTuningConfig(
            task_type=TaskType.CAUSAL_LM,
            num_virtual_tokens=args.num_virtual_tokens,
            prompt_tuning_init=PromptTuningInit.TEXT,
            prompt_tuning_init_text=args.prompt_tuning_init_text or init_text,
            tokenizer_name_or_path=tokenizer_path,
        )
    targets: str | list[str] = (
        "all-linear" if args.lora_target_modules == ["all-linear"] else list(args.lora_target_modules)
    )
    # modules_to_save stays None and no tokens are added: vLLM refuses adapters with either.
    return LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=targets,
        bias="none",
    )


def build_quantization_config() -> Any:
    """QLoRA's base-model quantisation: 4-bit NF4, double quantisation, bf16 compute."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
