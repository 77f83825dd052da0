"""Read one persona file (YAML, SillyTavern JSON or PNG) into a validated PersonaCard.

Every failure is a PersonaError naming the file and the field, so a streamer can fix the card
without reading a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from personas.card import Lorebook, PersonaCard
from personas.errors import PersonaError
from personas.sillytavern import (
    card_from_json,
    card_json_from_png,
    lorebook_from_character_book,
    lorebook_from_world_info,
)
from personas.validation import field_path

__all__ = ["CARD_SUFFIXES", "SIDECAR_SUFFIX", "load_card", "load_lorebook", "parse_card_bytes", "sidecar_of"]

CARD_SUFFIXES = (".yaml", ".yml", ".json", ".png")
# Beside a SillyTavern card (PNG or JSON), which has no room for them: costar's own fields.
SIDECAR_SUFFIX = ".costar.yaml"
_SIDECAR_FIELDS = frozenset({"lorebook_files", "style", "model", "id"})
_MAX_CARD_BYTES = 32 * 1024 * 1024  # PNG cards with big portraits are a few MB; more is not a card
Parsed = TypeVar("Parsed")
# Real cards nest a handful of levels (data.character_book.entries[i].extensions...); a file nested
# hundreds deep is an attack on the parser (Python's recursion limit) or on whatever walks it later.
MAX_NESTING = 64


def load_card(path: Path | str) -> PersonaCard:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PersonaError(path, f"cannot read the file ({exc.strerror or exc})") from exc
    card = parse_card_bytes(data, path.suffix.lower(), path)
    sidecar = sidecar_of(path)
    if sidecar.exists() and path.suffix.lower() in (".json", ".png"):
        card = _with_sidecar(card, sidecar)
    if card.lorebook_files:
        card = _merge_lorebook_files(card, path)
    return card


def sidecar_of(card_path: Path) -> Path:
    """``seraphina.png`` -> ``seraphina.costar.yaml``."""
    return card_path.with_name(card_path.stem + SIDECAR_SUFFIX)


def _with_sidecar(card: PersonaCard, sidecar: Path) -> PersonaCard:
    try:
        data = yaml.safe_load(_decode(sidecar.read_bytes(), sidecar)) or {}
    except OSError as exc:
        raise PersonaError(sidecar, f"cannot read the file ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise PersonaError(sidecar, _yaml_problem(exc)) from exc
    except RecursionError as exc:
        raise _too_deep(sidecar) from exc
    _check_nesting(data, sidecar)
    if not isinstance(data, dict):
        raise PersonaError(sidecar, "a sidecar must be a YAML mapping (lorebook_files: [...])")
    unknown = sorted(set(map(str, data)) - _SIDECAR_FIELDS)
    if unknown:
        fields = ", ".join(sorted(_SIDECAR_FIELDS))
        raise PersonaError(sidecar, f"a sidecar sets only {fields}", field=unknown[0])
    try:
        return PersonaCard.model_validate({**card.model_dump(), **data})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise PersonaError(sidecar, first["msg"], field=field_path(first["loc"]) or None) from exc


def parse_card_bytes(data: bytes, suffix: str, path: Path | None = None) -> PersonaCard:
    if len(data) > _MAX_CARD_BYTES:
        raise PersonaError(
            path, f"file is {len(data) // 1_000_000} MB; cards are at most {_MAX_CARD_BYTES // 1_000_000} MB"
        )
    try:
        if suffix == ".png":
            return card_from_json(_check_nesting(card_json_from_png(data, path), path), path)
        text = _decode(data, path)
        if suffix == ".json":
            return card_from_json(_json_object(text, path), path)
        if suffix in (".yaml", ".yml"):
            return _card_from_yaml(text, path)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        # A field of an unexpected type that no specific check caught: still the card's fault.
        raise PersonaError(path, f"malformed card ({type(exc).__name__}: {exc})") from exc
    except RecursionError as exc:  # a parser gave up on the nesting before _check_nesting could look
        raise _too_deep(path) from exc
    raise PersonaError(path, f"unsupported card type {suffix!r}; use one of {', '.join(CARD_SUFFIXES)}")


def load_lorebook(path: Path | str) -> Lorebook:
    """A world-info export or a bare character_book JSON file."""
    path = Path(path)
    try:
        data = _json_object(_decode(path.read_bytes(), path), path)
    except OSError as exc:
        raise PersonaError(path, f"cannot read the file ({exc.strerror or exc})") from exc
    except RecursionError as exc:
        raise _too_deep(path) from exc
    if isinstance(data.get("entries"), dict):
        return lorebook_from_world_info(data, path)
    return lorebook_from_character_book(data, path, where="")


def _decode(data: bytes, path: Path | None) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PersonaError(path, f"not UTF-8 text (byte {exc.start})") from exc


def _json_object(text: str, path: Path | None) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PersonaError(path, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise PersonaError(path, f"the top level must be an object, not {type(data).__name__}")
    return _check_nesting(data, path)


def _too_deep(path: Path | None) -> PersonaError:
    return PersonaError(path, f"nested more than {MAX_NESTING} levels deep; a card is not")


def _check_nesting(data: Parsed, path: Path | None) -> Parsed:
    """``data`` unchanged, or a PersonaError when lists and mappings nest deeper than MAX_NESTING.

    Walked with a stack, not recursion, so the check itself cannot hit the recursion limit; each
    container once, so YAML aliases (shared or even cyclic) cannot make the walk explode.
    """
    stack: list[tuple[Any, int]] = [(data, 1)]
    seen: set[int] = set()
    while stack:
        value, depth = stack.pop()
        if not isinstance(value, dict | list) or id(value) in seen:
            continue
        if depth > MAX_NESTING:
            raise _too_deep(path)
        seen.add(id(value))
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children)
    return data


def _card_from_yaml(text: str, path: Path | None) -> PersonaCard:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PersonaError(path, _yaml_problem(exc)) from exc
    if not isinstance(data, dict):
        raise PersonaError(path, "a persona card must be a YAML mapping (name: ..., description: ...)")
    _check_nesting(data, path)
    try:
        return PersonaCard(**{str(key): value for key, value in data.items()})
    except ValidationError as exc:
        problems = [_field_problem(error) for error in exc.errors()]
        if len(problems) == 1:  # the field in PersonaError's own place, as before
            field, message = problems[0]
            raise PersonaError(path, message, field=field) from exc
        listed = "; ".join(f"field '{field}': {message}" if field else message for field, message in problems)
        raise PersonaError(path, f"{len(problems)} problems: {listed}") from exc
    except TypeError as exc:
        raise PersonaError(path, str(exc)) from exc


# What the YAML parser was inside when the file ended: a quote or bracket opened and never closed.
_UNCLOSED = {
    "while scanning a quoted scalar": "a quote",
    "while parsing a flow sequence": "a [",
    "while parsing a flow mapping": "a {",
}


def _yaml_problem(error: yaml.YAMLError) -> str:
    """Where the YAML went wrong, for a person. An unclosed quote or bracket is reported by the
    parser where it gave up, often many lines later (``problem_mark``); the place to fix is where
    it opened (``context_mark``), so that is named."""
    problem = getattr(error, "problem", None) or str(error)
    opened, found = getattr(error, "context_mark", None), getattr(error, "problem_mark", None)
    unclosed = _UNCLOSED.get(str(getattr(error, "context", "")))
    if unclosed and opened is not None:
        gave_up = f" (the parser gave up at line {found.line + 1}: {problem})" if found is not None else ""
        return f"invalid YAML at line {opened.line + 1}, column {opened.column + 1}: {unclosed} opened here is never closed{gave_up}"
    if found is not None:
        return f"invalid YAML at line {found.line + 1}, column {found.column + 1}: {problem}"
    return f"invalid YAML: {problem}"


def _field_problem(error: Any) -> tuple[str | None, str]:
    message = str(error["msg"])
    if error["type"] == "extra_forbidden":
        message = "unknown field (check the spelling against personas/cards/pip.yaml)"
    return field_path(error["loc"]) or None, message


def _merge_lorebook_files(card: PersonaCard, card_path: Path) -> PersonaCard:
    entries = list(card.lorebook.entries)
    for index, name in enumerate(card.lorebook_files):
        book_path = (card_path.parent / name).resolve()
        try:
            entries.extend(load_lorebook(book_path).entries)
        except PersonaError as exc:
            raise PersonaError(card_path, f"{exc}", field=f"lorebook_files[{index}]") from exc
    return card.model_copy(update={"lorebook": card.lorebook.model_copy(update={"entries": entries})})
