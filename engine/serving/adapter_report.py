"""Is an adapter folder something vLLM will serve? Every reason it is not, in words.

vLLM (``--enable-lora``) loads ``adapter_config.json`` + ``adapter_model.safetensors`` of a
plain LoRA: it refuses ``modules_to_save`` (trained embeddings or lm_head), DoRA, added tokens,
and ranks outside ``--max-lora-rank``'s set (see docs/serving.md). Prompt-tuning adapters are not
LoRA: the embedded backend (peft) serves them, vLLM does not.

The safetensors header is read directly (8-byte length + JSON) so checking needs no torch.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from personas.card import VLLM_LORA_RANKS

__all__ = ["ADAPTER_CONFIG", "ADAPTER_WEIGHTS", "AdapterReport", "inspect_adapter", "safetensors_keys"]

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_EMBEDDING_NAMES = ("embed_tokens", "lm_head", "wte", "word_embeddings")


@dataclass(slots=True)
class AdapterReport:
    path: Path
    peft_type: str | None = None
    rank: int | None = None
    base_model: str | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def vllm_loadable(self) -> bool:
        return not self.reasons

    def verdict(self) -> str:
        if self.vllm_loadable:
            return f"OK: {self.path} is a LoRA adapter vLLM can serve (rank {self.rank}, base {self.base_model})"
        return f"REFUSED: {self.path} cannot be served by vLLM:\n" + "\n".join(
            f"  - {reason}" for reason in self.reasons
        )


def safetensors_keys(path: Path) -> list[str]:
    with path.open("rb") as handle:
        (header_length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(header_length))
    return [key for key in header if key != "__metadata__"]


def _config_reasons(config: dict[str, Any]) -> list[str]:
    reasons = []
    peft_type = str(config.get("peft_type", "")).upper()
    if peft_type != "LORA":
        reasons.append(
            f"peft_type is {peft_type or 'missing'}: vLLM serves LoRA adapters only "
            "(a prompt-tuning adapter still works with the embedded backend)"
        )
        return reasons
    rank = config.get("r")
    if rank not in VLLM_LORA_RANKS:
        reasons.append(f"rank r={rank} is not one vLLM accepts {VLLM_LORA_RANKS}; retrain with one of them")
    odd_ranks = sorted({r for r in (config.get("rank_pattern") or {}).values() if r not in VLLM_LORA_RANKS})
    if odd_ranks:
        reasons.append(f"rank_pattern uses ranks {odd_ranks} outside {VLLM_LORA_RANKS}")
    if config.get("modules_to_save"):
        reasons.append(
            f"modules_to_save={config['modules_to_save']}: vLLM refuses adapters that replace whole modules; "
            "train without modules_to_save"
        )
    if config.get("use_dora"):
        reasons.append("use_dora=true: vLLM does not serve DoRA adapters")
    if config.get("trainable_token_indices"):
        reasons.append("trainable_token_indices set: trained token embeddings are not served by vLLM")
    return reasons


def _folder_reasons(folder: Path) -> list[str]:
    reasons = []
    if (folder / "added_tokens.json").exists():
        reasons.append("added_tokens.json present: vLLM refuses adapters that add tokens; keep the base vocabulary")
    weights = folder / ADAPTER_WEIGHTS
    if not weights.exists():
        found = "adapter_model.bin found instead" if (folder / "adapter_model.bin").exists() else "missing"
        reasons.append(f"{ADAPTER_WEIGHTS} {found}: save with safe_serialization (peft's default)")
        return reasons
    embedding_keys = [
        key for key in safetensors_keys(weights) if any(name in key for name in _EMBEDDING_NAMES) and "lora_" not in key
    ]
    if embedding_keys:
        reasons.append(f"the weights hold full embedding/lm_head tensors ({embedding_keys[0]}, …): vLLM refuses them")
    return reasons


def inspect_adapter(path: Path | str) -> AdapterReport:
    folder = Path(path)
    report = AdapterReport(path=folder)
    config_path = folder / ADAPTER_CONFIG
    if not config_path.exists():
        report.reasons.append(f"no {ADAPTER_CONFIG} in {folder}")
        return report
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        report.reasons.append(f"{ADAPTER_CONFIG} is not readable JSON: {exc}")
        return report
    report.peft_type = config.get("peft_type")
    report.rank = config.get("r")
    report.base_model = config.get("base_model_name_or_path")
    report.reasons += _config_reasons(config)
    report.reasons += _folder_reasons(folder)
    return report
