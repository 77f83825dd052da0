"""`vllm serve` arguments derived from the installed personas (``costar vllm-args``).

One base model, one LoRA adapter per persona (see docs/serving.md):

    --enable-lora                   adapters are served at all
    --lora-modules {json} ...       every persona's adapter, JSON form with base_model_name so
                                    /v1/models shows the right parent
    --max-loras N                   adapters in one batch = personas generating at once; vLLM's
                                    default of 1 serialises mixed-persona traffic
    --max-cpu-loras M               every adapter stays cached in CPU memory
    --max-lora-rank R               the largest real rank rounded up to vLLM's set; more costs speed
    --enable-prefix-caching         the persona's system prompt is reused across replies
    --max-model-len T               COSTAR_BACKEND_CONTEXT_TOKENS, the window prompts are kept in
    --served-model-name NAME        when costar names the base differently from its weights

Adapters vLLM would refuse or serve wrongly (DoRA, ``modules_to_save``, another base model) are
left out with a warning rather than breaking the server's start.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from engine.serving.adapter_paths import adapter_folder
from engine.serving.model_store import DEFAULT_MODEL, DEFAULT_MODEL_HUB_ID
from engine.settings import Settings
from personas.card import VLLM_LORA_RANKS, PersonaCard
from personas.registry import PersonaRegistry

__all__ = ["AdapterSpec", "VllmPlan", "adapter_config", "plan_from_settings", "plan_vllm", "real_rank", "round_up_rank"]

VLLM_DEFAULT_RANK = 16


@dataclass(frozen=True, slots=True)
class AdapterSpec:
    name: str
    path: str  # as the vLLM server sees it
    rank: int  # the real rank (largest over all modules)
    persona_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VllmPlan:
    base_model: str  # the weights vLLM loads: a hub id or a folder on the server
    adapters: tuple[AdapterSpec, ...]
    max_loras: int
    warnings: tuple[str, ...] = field(default=())
    served_name: str | None = None  # the name costar requests the base by, when it differs
    max_model_len: int | None = None  # COSTAR_BACKEND_CONTEXT_TOKENS: prompts never exceed it

    @property
    def base_name(self) -> str:
        return self.served_name or self.base_model

    @property
    def max_cpu_loras(self) -> int:
        # vLLM requires max_cpu_loras >= max_loras.
        return max(len(self.adapters), self.max_loras)

    @property
    def max_lora_rank(self) -> int:
        return round_up_rank(max((adapter.rank for adapter in self.adapters), default=VLLM_DEFAULT_RANK))

    def args(self) -> list[str]:
        """Arguments after ``vllm serve``, the base model first."""
        args = [self.base_model, "--enable-prefix-caching"]
        if self.served_name and self.served_name != self.base_model:
            args += ["--served-model-name", self.served_name]
        if self.max_model_len:
            # The bot keeps prompts inside this; a shorter window leaves KV cache for more channels.
            args += ["--max-model-len", str(self.max_model_len)]
        if not self.adapters:
            return args
        modules = [
            json.dumps({"name": a.name, "path": a.path, "base_model_name": self.base_name}, separators=(",", ":"))
            for a in self.adapters
        ]
        return [
            *args,
            "--enable-lora",
            "--max-lora-rank",
            str(self.max_lora_rank),
            "--max-loras",
            str(self.max_loras),
            "--max-cpu-loras",
            str(self.max_cpu_loras),
            "--lora-modules",
            *modules,
        ]

    def command(self) -> str:
        """A shell command, one option per line."""
        lines: list[str] = ["vllm serve " + shlex.quote(self.base_model)]
        for arg in self.args()[1:]:
            if arg.startswith("--"):
                lines.append("  " + arg)
            else:
                lines[-1] += " " + shlex.quote(arg)
        return " \\\n".join(lines)


def round_up_rank(rank: int) -> int:
    """The smallest rank vLLM accepts for --max-lora-rank that is at least ``rank``."""
    for allowed in VLLM_LORA_RANKS:
        if allowed >= rank:
            return allowed
    raise ValueError(f"LoRA rank {rank} is above vLLM's largest ({VLLM_LORA_RANKS[-1]})")


def adapter_config(path: str | Path) -> dict[str, Any] | None:
    """The adapter's adapter_config.json, or None when the folder is not readable here."""
    config_path = Path(path) / "adapter_config.json"
    try:
        config: dict[str, Any] = json.loads(config_path.read_text(encoding="utf-8"))
        return config
    except (OSError, ValueError):
        return None


def real_rank(config: dict[str, Any]) -> int | None:
    """The largest rank any module uses: ``r`` and the per-module ``rank_pattern`` overrides."""
    ranks = [int(config["r"])] if isinstance(config.get("r"), int) else []
    ranks += [int(value) for value in (config.get("rank_pattern") or {}).values()]
    return max(ranks, default=None)


def refusal_reason(config: dict[str, Any]) -> str | None:
    """Why vLLM would refuse this adapter (see docs/serving.md), or None."""
    if config.get("use_dora"):
        return "it is a DoRA adapter"
    if config.get("modules_to_save"):
        return f"it trains whole modules ({', '.join(config['modules_to_save'])}: modules_to_save)"
    return None


def _server_path(path: str, server_adapter_dir: str | None) -> str:
    if server_adapter_dir:
        return str(PurePosixPath(server_adapter_dir) / Path(path).name)
    return str(Path(path).resolve())


def _adapter_for(
    card: PersonaCard, source: Path | None, base_names: tuple[str, ...], server_adapter_dir: str | None
) -> tuple[AdapterSpec | None, list[str]]:
    binding = card.model.adapter
    if binding is None:
        return None, []
    folder = adapter_folder(card, source)
    who = f"persona {card.persona_id} (adapter {binding.name})"
    if card.model.base and card.model.base not in base_names:
        # vLLM may load it silently and produce nonsense (see docs/serving.md).
        return None, [f"{who}: left out, trained for {card.model.base}, the server runs {base_names[0]}"]
    if folder is None:
        return None, [f"{who}: left out, its card gives no adapter path"]
    config = adapter_config(folder)
    if config is not None and (reason := refusal_reason(config)):
        return None, [f"{who}: left out, vLLM refuses it: {reason}"]
    rank = binding.rank or (real_rank(config) if config else None)
    warnings = []
    if rank is None:
        rank = VLLM_DEFAULT_RANK
        warnings.append(f"{who}: rank unknown (no readable adapter_config.json, no rank in the card); assuming {rank}")
    spec = AdapterSpec(binding.name, _server_path(folder, server_adapter_dir), rank, (card.persona_id,))
    return spec, warnings


def plan_vllm(
    personas: Iterable[PersonaCard],
    base_model: str,
    *,
    sources: Mapping[str, Path] | None = None,
    max_loras: int | None = None,
    max_concurrency: int = 4,
    server_adapter_dir: str | None = None,
    served_name: str | None = None,
    max_model_len: int | None = None,
) -> VllmPlan:
    """Work out the server flags; ``max_loras`` defaults to the personas that can generate at once.

    ``served_name`` is the name costar requests the base model by (COSTAR_BACKEND_MODEL) when it
    differs from the weights vLLM loads (``--served-model-name``). ``sources`` maps persona id to
    its card file, against which relative adapter paths resolve.
    """
    base_names = (base_model,) if served_name is None or served_name == base_model else (base_model, served_name)
    by_name: dict[str, AdapterSpec] = {}
    warnings: list[str] = []
    for card in personas:
        spec, found = _adapter_for(card, (sources or {}).get(card.persona_id), base_names, server_adapter_dir)
        warnings += found
        if spec is None:
            continue
        known = by_name.get(spec.name)
        if known is not None and known.path != spec.path:
            warnings.append(
                f"adapter {spec.name}: personas {known.persona_ids} and {card.persona_id} "
                f"give different paths; keeping {known.path}"
            )
            continue
        if known is not None:
            spec = AdapterSpec(
                known.name, known.path, max(known.rank, spec.rank), (*known.persona_ids, *spec.persona_ids)
            )
        by_name[spec.name] = spec
    adapters = tuple(by_name.values())
    active = max_loras if max_loras is not None else min(len(adapters), max_concurrency)
    return VllmPlan(base_model, adapters, max(1, active), tuple(warnings), served_name, max_model_len)


def plan_from_settings(
    settings: Settings,
    personas: PersonaRegistry,
    *,
    weights: str | None = None,
    max_loras: int | None = None,
    server_adapter_dir: str | None = None,
) -> VllmPlan:
    """The plan for the installed personas; costar requests the base as COSTAR_BACKEND_MODEL.

    ``weights`` is what vLLM loads when that differs from the name (a folder on the server); the
    built-in name ``smollm2`` means SmolLM2-135M-Instruct from the hub.
    """
    served_name = settings.backend.model
    if weights is None:
        weights = DEFAULT_MODEL_HUB_ID if served_name == DEFAULT_MODEL else served_name
    return plan_vllm(
        personas.cards.values(),
        weights,
        sources=personas.sources,
        max_loras=max_loras if max_loras is not None else settings.backend.max_loras,
        max_concurrency=settings.backend.max_concurrency,
        server_adapter_dir=server_adapter_dir or settings.backend.server_adapter_dir,
        served_name=served_name,
        max_model_len=settings.backend.context_tokens,
    )
