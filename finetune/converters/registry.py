"""Rows in (a local file, or a dataset name on the Hub), conversations out."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from finetune.converters.base import ConvertContext
from finetune.converters.chatlogs import ChatLogOptions, from_chatlog, memory_db_rows
from finetune.converters.hpd import from_hpd, hpd_records
from finetune.converters.personachat import from_cynaptics, from_truecased
from finetune.converters.wow import from_wow
from finetune.data import Conversation, read_jsonl, with_system_prompt
from finetune.errors import DataError

__all__ = ["CONVERTERS", "convert", "load_rows"]

RowConverter = Callable[[Iterable[dict[str, Any]], ConvertContext], Iterator[Conversation]]


def _from_our_jsonl(rows: Iterable[dict[str, Any]], context: ConvertContext) -> Iterator[Conversation]:
    for row in rows:
        conversation = Conversation.model_validate(row)
        if conversation.system_prompt is None:
            conversation = with_system_prompt(conversation, context.render(context.card))
        yield conversation


CONVERTERS: dict[str, RowConverter] = {
    "personachat": from_cynaptics,
    "personachat_tc": from_truecased,
    "hpd": from_hpd,
    "wow": from_wow,
    "chatlog": from_chatlog,
    "jsonl": _from_our_jsonl,
}


def _read_json(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and all(isinstance(value, dict) for value in data.values()):
        return hpd_records(data)  # keyed by session/dialogue id
    if isinstance(data, list):
        return [row for row in data if isinstance(row, dict)]
    raise DataError(path, "expected a JSON list of records or an object of records")


def _read_local(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if suffix == ".json":
            return _read_json(path)
        if suffix == ".csv":
            with path.open(encoding="utf-8", newline="") as handle:
                return list(csv.DictReader(handle))
        if suffix == ".parquet":
            from datasets import Dataset

            return list(Dataset.from_parquet(str(path)))
    except (OSError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        raise DataError(path, f"cannot read: {exc}") from exc
    raise DataError(path, f"unknown file type {suffix!r}: use .jsonl, .json, .csv or .parquet")


def load_rows(source: str, split: str = "train", limit: int | None = None) -> list[dict[str, Any]]:
    """Rows from a local file, or from the Hub through ``datasets`` when ``source`` is no file."""
    path = Path(source).expanduser()
    rows = _read_local(path) if path.exists() else _load_hub(source, split, limit)
    return rows[:limit] if limit else rows


def _load_hub(name: str, split: str, limit: int | None) -> list[dict[str, Any]]:
    from datasets import load_dataset

    selection = f"{split}[:{limit}]" if limit else split
    try:
        dataset = load_dataset(name, split=selection)
    except Exception as exc:  # datasets raises many types (ConnectionError, FileNotFoundError, HfHubHTTPError)
        raise DataError(
            name,
            f"not a local file, and loading it from the Hub failed ({type(exc).__name__}: {exc}); "
            "download it where the Hub is reachable and pass the file",
        ) from exc
    return list(dataset)


def convert(
    kind: str,
    source: str,
    context: ConvertContext,
    split: str = "train",
    limit: int | None = None,
    chatlog_options: ChatLogOptions | None = None,
    approved_ids: set[int] | None = None,
) -> list[Conversation]:
    """Convert ``source`` with the converter ``kind`` (see :data:`CONVERTERS`, plus ``memory_db``)."""
    if kind not in CONVERTERS and kind != "memory_db":
        raise DataError(source, f"unknown converter {kind!r}; choose one of {', '.join([*CONVERTERS, 'memory_db'])}")
    if kind == "memory_db":
        rows = memory_db_rows(source, context.persona_id, approved_ids=approved_ids)
        return list(from_chatlog(rows, context, chatlog_options))
    if kind == "jsonl" and Path(source).exists():
        rows = [conversation.model_dump() for conversation in read_jsonl(source)]  # validated, errors name the line
    else:
        rows = load_rows(source, split, limit)
    if kind == "chatlog":
        return list(from_chatlog(rows, context, chatlog_options))
    return list(CONVERTERS[kind](rows, context))
