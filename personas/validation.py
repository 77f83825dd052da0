"""Turning pydantic's error locations into the dotted field names users see."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["field_path"]


def field_path(location: Sequence[int | str]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path
