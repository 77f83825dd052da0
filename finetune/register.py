"""Bind a trained adapter to a persona card (``model.adapter``: name, path, rank).

    python -m finetune.register outputs/adapters/pip --card my-cards/pip.yaml --name pip-lora

The adapter is checked first: one vLLM cannot serve is refused with the reasons (pass
``--embedded-only`` to bind a prompt-tuning adapter for the embedded backend anyway). Only the
card's ``model:`` block is rewritten (ruamel.yaml keeps the comments in it); every other line of
the file stays byte for byte. The adapter path is written relative to the card, so the card and
its adapter can move together (a path outside the card's tree stays relative too: ``../..``).
"""

from __future__ import annotations

import argparse
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from ruamel.yaml.comments import CommentedMap

from engine.serving.adapter_report import inspect_adapter
from finetune.errors import AdapterRejected, FinetuneError
from personas.card import PersonaCard
from personas.card_text import block_span, round_trip

__all__ = ["main", "register_adapter"]


def _relative_to_card(adapter_dir: Path, card_path: Path) -> str:
    try:
        return Path(os.path.relpath(adapter_dir.resolve(), card_path.resolve().parent)).as_posix()
    except ValueError:  # another drive (Windows): no relative path exists
        return str(adapter_dir.resolve())


def _binding(adapter_dir: Path, card_path: Path, name: str, rank: int | None) -> dict[str, Any]:
    binding: dict[str, Any] = {"name": name, "path": _relative_to_card(adapter_dir, card_path)}
    if rank is not None:
        binding["rank"] = rank
    return binding


def _with_model_block(text: str, model: dict[str, Any]) -> str:
    """``text`` with its top-level ``model:`` block replaced (or appended); other lines untouched."""
    writer = round_trip()
    document = writer.load(text)
    lines = text.splitlines(keepends=True)
    span = block_span(text, "model", document) if isinstance(document, CommentedMap) else None
    if span is None:
        start = end = len(lines)
        block_value: Any = model
    else:
        start, end = span
        block_value = document["model"] if isinstance(document["model"], CommentedMap) else CommentedMap()
        for key in list(block_value):
            if key not in model:
                del block_value[key]
        block_value.update(model)
    rendered = io.StringIO()
    writer.dump({"model": block_value}, rendered)
    head = "".join(lines[:start])
    if head and not head.endswith("\n"):
        head += "\n"
    return head + rendered.getvalue() + "".join(lines[end:])


def register_adapter(
    adapter_dir: Path | str, card_path: Path | str, name: str | None = None, embedded_only: bool = False
) -> dict[str, Any]:
    """Write the adapter binding into the card file; returns the binding. Raises AdapterRejected."""
    adapter_dir, card_path = Path(adapter_dir), Path(card_path)
    report = inspect_adapter(adapter_dir)
    if not report.vllm_loadable and not (embedded_only and report.peft_type):
        raise AdapterRejected(adapter_dir, report.reasons)
    rank = report.rank if report.vllm_loadable else None
    binding = _binding(adapter_dir, card_path, name or adapter_dir.name, rank)
    text = card_path.read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    model = {**(data.get("model") or {}), "adapter": binding}
    try:
        PersonaCard.model_validate({**data, "model": model})
    except ValidationError as exc:
        raise FinetuneError(
            f"{card_path}: the card would not validate with this binding: {exc.errors()[0]['msg']}"
        ) from exc
    card_path.write_text(_with_model_block(text, model), encoding="utf-8")
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
