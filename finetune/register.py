"""Bind a trained adapter to a persona card (``model.adapter``: name, path, rank).

    python -m finetune.register outputs/adapters/pip --card personas/cards/pip.yaml --name pip-lora

The adapter is checked first: one vLLM cannot serve is refused with the reasons (pass
``--embedded-only`` to bind a prompt-tuning adapter for the embedded backend anyway). Every other
field of the card is kept. When the card has no ``model:`` section yet, the binding is appended
as text so comments and layout survive; otherwise the card is rewritten (field order kept,
comments lost — a notice says so).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from finetune.adapters import inspect_adapter
from finetune.errors import AdapterRejected, FinetuneError
from personas.card import PersonaCard

__all__ = ["main", "register_adapter"]


def _binding(adapter_dir: Path, name: str, rank: int | None) -> dict[str, Any]:
    binding: dict[str, Any] = {"name": name, "path": str(adapter_dir.resolve())}
    if rank is not None:
        binding["rank"] = rank
    return binding


def register_adapter(
    adapter_dir: Path | str, card_path: Path | str, name: str | None = None, embedded_only: bool = False
) -> dict[str, Any]:
    """Write the adapter binding into the card file; returns the binding. Raises AdapterRejected."""
    adapter_dir, card_path = Path(adapter_dir), Path(card_path)
    report = inspect_adapter(adapter_dir)
    if not report.vllm_loadable and not (embedded_only and report.peft_type):
        raise AdapterRejected(adapter_dir, report.reasons)
    rank = report.rank if report.vllm_loadable else None
    binding = _binding(adapter_dir, name or adapter_dir.name, rank)
    text = card_path.read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    model = dict(data.get("model") or {})
    model["adapter"] = binding
    updated = {**data, "model": model}
    try:
        PersonaCard.model_validate(updated)
    except ValidationError as exc:
        raise FinetuneError(
            f"{card_path}: the card would not validate with this binding: {exc.errors()[0]['msg']}"
        ) from exc
    if "model" not in data:
        block = yaml.safe_dump({"model": model}, sort_keys=False, allow_unicode=True)
        card_path.write_text(text.rstrip("\n") + "\n" + block, encoding="utf-8")
    else:
        card_path.write_text(yaml.safe_dump(updated, sort_keys=False, allow_unicode=True), encoding="utf-8")
        print(f"notice: {card_path} was rewritten; YAML comments in it are not kept")
    return binding


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m finetune.register", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("adapter", type=Path, help="adapter folder")
    parser.add_argument("--card", type=Path, required=True, help="persona card YAML to bind the adapter to")
    parser.add_argument("--name", help="name vLLM serves the adapter under (default: the folder's name)")
    parser.add_argument(
        "--embedded-only",
        action="store_true",
        help="bind an adapter vLLM cannot serve (prompt tuning) for the embedded backend",
    )
    args = parser.parse_args(argv)
    try:
        binding = register_adapter(args.adapter, args.card, args.name, args.embedded_only)
    except FinetuneError as exc:
        print(f"error: {exc}")
        return 1
    print(f"{args.card}: model.adapter = {binding}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
