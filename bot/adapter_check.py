"""Is a persona's bound adapter usable? Checked by ``costar persona check`` and at start.

A card whose ``model.adapter`` points at a missing or broken folder otherwise loads fine and only
fails mid-chat, the first time that persona answers. The rules are finetune's
(:func:`engine.serving.adapter_report.inspect_adapter`) plus one more: the adapter was trained for the base
model the persona answers with (an adapter for another base loads silently and speaks nonsense).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.serving.adapter_paths import adapter_folder
from engine.serving.adapter_report import ADAPTER_CONFIG, inspect_adapter
from engine.serving.model_store import DEFAULT_MODEL, DEFAULT_MODEL_HUB_ID
from personas.card import PersonaCard

__all__ = ["AdapterCheck", "check_adapter"]

_SERVABLE_BY_EMBEDDED = ("LORA", "PROMPT_TUNING")


@dataclass(slots=True)
class AdapterCheck:
    folder: str | None = None
    problems: list[str] = field(default_factory=list)  # the persona cannot answer with it
    notes: list[str] = field(default_factory=list)  # works here, not everywhere (vLLM)


def _same_base(trained_for: str, answers_with: str) -> bool:
    def key(name: str) -> str:
        if name in (DEFAULT_MODEL, DEFAULT_MODEL_HUB_ID) or Path(name).name == DEFAULT_MODEL:
            return DEFAULT_MODEL
        return name.rstrip("/").rsplit("/", 1)[-1].lower()

    return key(trained_for) == key(answers_with)


def check_adapter(card: PersonaCard, source: Path | None, default_base: str) -> AdapterCheck:
    """``default_base`` is COSTAR_BACKEND_MODEL, the base a card without ``model.base`` answers with."""
    binding = card.model.adapter
    if binding is None:
        return AdapterCheck()
    folder = adapter_folder(card, source)
    check = AdapterCheck(folder)
    if folder is None:
        check.problems.append(f"adapter {binding.name!r} has no path")
        return check
    if not Path(folder).is_dir():
        check.problems.append(f"adapter folder {folder} does not exist (paths are relative to the card)")
        return check
    report = inspect_adapter(folder)
    if report.peft_type is None or str(report.peft_type).upper() not in _SERVABLE_BY_EMBEDDED:
        check.problems += report.reasons or [f"{ADAPTER_CONFIG}: peft_type {report.peft_type} is not served"]
        return check
    missing = [reason for reason in report.reasons if "missing" in reason or "not readable" in reason]
    check.problems += missing
    check.notes += [f"vLLM cannot serve it: {reason}" for reason in report.reasons if reason not in missing]
    base = card.model.base or default_base
    if report.base_model and not _same_base(report.base_model, base):
        check.problems.append(f"it was trained for {report.base_model}, but the persona answers with {base}")
    return check
