"""Import SillyTavern Character Cards (V2, V3) and world-info exports into costar's shapes.

V2/V3 JSON: ``{spec, spec_version, data: {...}}``; PNG cards carry the same JSON base64-encoded in
a ``tEXt`` chunk named ``ccv3`` (V3, preferred) or ``chara`` (V2). World-info exports use a
different shape from ``character_book`` (entries keyed by id, ``key``/``keysecondary``/``order``).
Fields costar has no use for stay in ``extensions`` so a re-export loses nothing.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import re
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ValidationError

from personas.card import ExampleTurn, Lorebook, LoreEntry, PersonaCard
from personas.errors import PersonaError
from personas.validation import field_path

__all__ = ["card_from_json", "card_json_from_png", "lorebook_from_character_book", "lorebook_from_world_info"]

log = logging.getLogger(__name__)

_SPECS = {"chara_card_v2": "2", "chara_card_v3": "3"}
_SPEAKER = re.compile(r"^\s*(\{\{user\}\}|\{\{char\}\}|<USER>|<BOT>)\s*:\s?(.*)$", re.IGNORECASE)
_LEGACY_MACROS = {"<USER>": "{{user}}", "<BOT>": "{{char}}", "<user>": "{{user}}", "<bot>": "{{char}}"}


def card_json_from_png(data: bytes, path: Path | None = None) -> dict[str, Any]:
    """The card JSON embedded in a PNG; prefers the V3 ``ccv3`` chunk over V2 ``chara``."""
    try:
        image = Image.open(io.BytesIO(data))
        chunks = dict(getattr(image, "text", {}) or {})
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        # Pillow's own message names an in-memory buffer ("<_io.BytesIO object at 0x...>"), not the file.
        found = "an empty file" if not data else f"{len(data)} bytes starting {data[:8]!r}"
        raise PersonaError(
            path,
            f"not a readable PNG image ({found}); a card PNG is a picture with the character's JSON "
            "in a 'chara' (V2) or 'ccv3' (V3) tEXt chunk, as SillyTavern exports it",
        ) from exc
    chunk_name = "ccv3" if "ccv3" in chunks else "chara" if "chara" in chunks else None
    if chunk_name is None:
        raise PersonaError(path, "this PNG carries no character card (no 'ccv3' or 'chara' tEXt chunk)")
    try:
        decoded = json.loads(base64.b64decode(chunks[chunk_name], validate=False).decode("utf-8"))
    except (binascii.Error, ValueError) as exc:  # ValueError: a non-ASCII chunk; covers bad UTF-8 and JSON too
        raise PersonaError(
            path, f"the '{chunk_name}' chunk is not base64 of UTF-8 JSON ({exc})", field=chunk_name
        ) from exc
    if not isinstance(decoded, dict):
        raise PersonaError(path, "the card JSON must be an object", field=chunk_name)
    return decoded


def _text(data: dict[str, Any], key: str, path: Path | None) -> str:
    value = data.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PersonaError(path, f"must be text, got {type(value).__name__}", field=f"data.{key}")
    text = value.replace("\r\n", "\n")
    for legacy, macro in _LEGACY_MACROS.items():
        text = text.replace(legacy, macro)
    return text.strip()


def _strings(data: dict[str, Any], key: str, path: Path | None) -> list[str]:
    value = data.get(key) or []
    if not isinstance(value, list):
        raise PersonaError(path, f"must be a list of text, got {type(value).__name__}", field=f"data.{key}")
    return [item for item in value if isinstance(item, str)]


def parse_example_dialogues(mes_example: str) -> list[list[ExampleTurn]]:
    """Split SillyTavern's ``mes_example`` into dialogues at ``<START>`` and lines by speaker."""
    dialogues: list[list[ExampleTurn]] = []
    for block in re.split(r"<START>", mes_example, flags=re.IGNORECASE):
        turns: list[dict[str, str]] = []
        for line in block.splitlines():
            match = _SPEAKER.match(line)
            if match:
                speaker = "user" if match.group(1).lower() in ("{{user}}", "<user>") else "char"
                turns.append({speaker: match.group(2).strip()})
            elif turns and line.strip():
                ((speaker, said),) = turns[-1].items()
                turns[-1][speaker] = f"{said}\n{line.strip()}"
        if turns:
            dialogues.append([ExampleTurn(**turn) for turn in turns])
    return dialogues


def lorebook_from_character_book(
    book: dict[str, Any], path: Path | None, where: str = "data.character_book"
) -> Lorebook:
    if not isinstance(book, dict):
        raise PersonaError(path, "must be an object", field=where)
    entries = book.get("entries") or []
    if not isinstance(entries, list):
        raise PersonaError(path, "must be a list", field=f"{where}.entries")
    known = set(LoreEntry.model_fields)
    converted = []
    for index, raw in enumerate(entries):
        if not isinstance(raw, dict):
            raise PersonaError(path, "must be an object", field=f"{where}.entries[{index}]")
        fields = {key: value for key, value in raw.items() if key in known and value is not None}
        extras = {key: value for key, value in raw.items() if key not in known and key != "id"}
        fields["extensions"] = {**raw.get("extensions", {}), **({"st_fields": extras} if extras else {})}
        if raw.get("id") is not None:
            fields["extensions"]["id"] = raw["id"]
        converted.append(_validated(LoreEntry, fields, path, f"{where}.entries[{index}]"))
    return _validated(
        Lorebook,
        {
            "name": book.get("name"),
            "description": book.get("description"),
            "scan_depth": book.get("scan_depth") or 4,
            "token_budget": book.get("token_budget") or 400,
            "recursive_scanning": bool(book.get("recursive_scanning", False)),
            "entries": converted,
            "extensions": book.get("extensions") or {},
        },
        path,
        where,
    )


def lorebook_from_world_info(data: dict[str, Any], path: Path | None) -> Lorebook:
    """A SillyTavern world-info export: ``{"entries": {"0": {"key": [...], "content": ...}}}``."""
    entries = data.get("entries")
    if not isinstance(entries, dict):
        raise PersonaError(path, "a world-info file needs an 'entries' object keyed by id", field="entries")
    converted = []
    for key, raw in entries.items():
        where = f"entries.{key}"
        if not isinstance(raw, dict):
            raise PersonaError(path, "must be an object", field=where)
        position = "before_char" if raw.get("position", 0) == 0 else "after_char"
        known = {
            "uid",
            "key",
            "keysecondary",
            "content",
            "constant",
            "selective",
            "order",
            "position",
            "disable",
            "comment",
        }
        fields = {
            "keys": raw.get("key") or [],
            "secondary_keys": raw.get("keysecondary") or [],
            "content": raw.get("content") or "",
            "constant": bool(raw.get("constant", False)),
            "selective": bool(raw.get("selective", False)),
            "insertion_order": raw["order"] if raw.get("order") is not None else 100,
            "enabled": not bool(raw.get("disable", False)),
            "position": position,
            "comment": raw.get("comment") or None,
            "extensions": {"uid": raw.get("uid"), "st_fields": {k: v for k, v in raw.items() if k not in known}},
        }
        converted.append(_validated(LoreEntry, fields, path, where))
    return _validated(
        Lorebook, {"name": data.get("name") or (path.stem if path else None), "entries": converted}, path, "entries"
    )


def card_from_json(data: dict[str, Any], path: Path | None = None) -> PersonaCard:
    """A V2 or V3 card dict → PersonaCard. V1 (flat) cards are read from the top level."""
    spec = data.get("spec")
    if spec is not None and (not isinstance(spec, str) or spec not in _SPECS):
        raise PersonaError(
            path, f"unknown card spec {spec!r}; costar reads chara_card_v2 and chara_card_v3", field="spec"
        )
    if "entries" in data and "name" not in data and "data" not in data:
        raise PersonaError(
            path, "this is a world-info (lorebook) file, not a character card; list it in a card's lorebook_files"
        )
    body = data.get("data") if spec else data
    if spec and not (isinstance(body, dict) and body.get("name")) and isinstance(data.get("name"), str):
        # Some card tools write the V1 fields at the top level beside an empty "data" object.
        log.warning("%s: 'data' has no character; reading the V1 fields at the top level instead", path or "<card>")
        body = data
    if not isinstance(body, dict):
        raise PersonaError(path, "must be an object holding the character", field="data")
    name = _text(body, "name", path)
    if not name:
        raise PersonaError(path, "a character needs a name", field="data.name")
    book = body.get("character_book")
    extensions = body.get("extensions") or {}
    if not isinstance(extensions, dict):
        raise PersonaError(path, f"must be an object, got {type(extensions).__name__}", field="data.extensions")
    extensions = dict(extensions)
    v3_only = {
        key: body[key]
        for key in (
            "assets",
            "source",
            "group_only_greetings",
            "creator_notes_multilingual",
            "creation_date",
            "modification_date",
        )
        if key in body
    }
    if v3_only:
        extensions["chara_card_v3"] = v3_only
    fields: dict[str, Any] = {
        "name": name,
        "nickname": _text(body, "nickname", path) or None,
        "description": _text(body, "description", path),
        "personality": _text(body, "personality", path),
        "scenario": _text(body, "scenario", path),
        "greeting": _text(body, "first_mes", path),
        "alternate_greetings": _strings(body, "alternate_greetings", path),
        "example_dialogues": parse_example_dialogues(_text(body, "mes_example", path)),
        "system_prompt": _text(body, "system_prompt", path) or None,
        "post_history_instructions": _text(body, "post_history_instructions", path) or None,
        "tags": _strings(body, "tags", path),
        "creator": _text(body, "creator", path) or None,
        "creator_notes": _text(body, "creator_notes", path) or None,
        "character_version": _text(body, "character_version", path) or None,
        "source_format": spec or "chara_card_v1",
        "extensions": extensions,
    }
    if book:
        fields["lorebook"] = lorebook_from_character_book(book, path)
    return _validated(PersonaCard, fields, path, "data")


_Model = TypeVar("_Model", bound=BaseModel)


def _validated(model: type[_Model], fields: dict[str, Any], path: Path | None, where: str) -> _Model:
    """Build a pydantic model; the first error names the card's field path (``where.loc``)."""
    try:
        return model(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = field_path(first["loc"])
        raise PersonaError(path, first["msg"], field=f"{where}.{location}" if where else location) from exc
