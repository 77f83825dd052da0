"""Edit a YAML card's top-level blocks as text, so every other line stays byte for byte.

ruamel.yaml's round-trip loader tells where each top-level key starts; a block runs to the next
key, less the blank lines and comments just above that key (they belong to it). Used by
``finetune.register`` (the ``model:`` block) and the dashboard (``reactions:`` and ``commands:``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from personas.card import PersonaCard
from personas.errors import PersonaError
from personas.loader import parse_card_bytes

__all__ = ["block_span", "blocks_text", "replace_blocks", "round_trip", "save_blocks"]


def round_trip() -> YAML:
    loader = YAML()
    loader.preserve_quotes = True
    loader.width = 4096  # never re-wrap a long line
    loader.indent(mapping=2, sequence=4, offset=2)
    loader.representer.add_representer(
        type(None), lambda representer, _: representer.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return loader


def _document(text: str, path: Path | None) -> CommentedMap:
    try:
        document = round_trip().load(text)
    except YAMLError as exc:
        raise PersonaError(path, f"not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(document, CommentedMap):
        raise PersonaError(path, "a card is a YAML mapping (key: value lines)")
    return document


def block_span(text: str, key: str, document: CommentedMap | None = None) -> tuple[int, int] | None:
    """The lines ``[start, end)`` of the top-level ``key:`` block, or None when the card has none."""
    document = document if document is not None else _document(text, None)
    if key not in document:
        return None
    lines = text.splitlines(keepends=True)
    start = document.lc.key(key)[0]
    later = [document.lc.key(other)[0] for other in document if document.lc.key(other)[0] > start]
    end = min(later, default=len(lines))
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
        end -= 1  # blank lines and comments just above the next key belong to that key
    return start, end


def blocks_text(text: str, keys: Sequence[str]) -> str:
    """The ``keys`` blocks as they are written in the file, in file order."""
    document = _document(text, None)
    lines = text.splitlines(keepends=True)
    spans = sorted(span for key in keys if (span := block_span(text, key, document)) is not None)
    return "".join("".join(lines[start:end]) for start, end in spans)


def replace_blocks(text: str, keys: Sequence[str], new_blocks: str, path: Path | None = None) -> str:
    """``text`` with its ``keys`` blocks taken out and ``new_blocks`` (YAML holding only those keys)
    put where the first of them was (else at the end). Every other line stays as it was."""
    offered = _document(new_blocks, path) if new_blocks.strip() else CommentedMap()
    unknown = [str(key) for key in offered if key not in keys]
    if unknown:
        raise PersonaError(path, f"only {', '.join(keys)} may be edited here, not {', '.join(unknown)}")
    document = _document(text, path)
    lines = text.splitlines(keepends=True)
    spans = sorted(span for key in keys if (span := block_span(text, key, document)) is not None)
    at = spans[0][0] if spans else len(lines)
    for start, end in reversed(spans):
        del lines[start:end]
    if lines[:at] and not lines[at - 1].endswith("\n"):
        lines[at - 1] += "\n"
    inserted = new_blocks if not new_blocks or new_blocks.endswith("\n") else new_blocks + "\n"
    return "".join(lines[:at]) + inserted + "".join(lines[at:])


def save_blocks(path: Path, keys: Sequence[str], new_blocks: str) -> PersonaCard:
    """Replace the ``keys`` blocks of the YAML card at ``path``, after checking the whole card.

    Nothing is written unless the edited card loads (PersonaError names the field otherwise);
    the file is replaced in one step, so a crash never leaves half a card.
    """
    text = path.read_text(encoding="utf-8")
    edited = replace_blocks(text, keys, new_blocks, path)
    card = parse_card_bytes(edited.encode("utf-8"), path.suffix.lower(), path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(edited)
        os.chmod(temporary, path.stat().st_mode & 0o777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return card
