"""Errors about persona files; each names the file and, where known, the field."""

from __future__ import annotations

from pathlib import Path

__all__ = ["PersonaError"]


class PersonaError(Exception):
    def __init__(self, path: Path | str | None, problem: str, field: str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.field = field
        self.problem = problem
        where = str(self.path) if self.path else "<card>"
        if field:
            where += f": field '{field}'"
        super().__init__(f"{where}: {problem}")
