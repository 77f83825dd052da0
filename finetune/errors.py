"""Errors of the fine-tuning tools; each says what to fix.

FinetuneError
├── DataError         a dataset file or row is malformed (names the file and line or field)
├── AdapterRejected   an adapter vLLM would refuse (carries every reason)
└── ConfigError       contradictory training options
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["AdapterRejected", "ConfigError", "DataError", "FinetuneError"]


class FinetuneError(Exception):
    """Base of every error the fine-tuning tools raise on purpose."""


class DataError(FinetuneError):
    def __init__(self, source: Path | str, problem: str, line: int | None = None) -> None:
        self.source = str(source)
        self.line = line
        self.problem = problem
        where = f"{source}:{line}" if line is not None else str(source)
        super().__init__(f"{where}: {problem}")


class AdapterRejected(FinetuneError):
    def __init__(self, path: Path | str, reasons: list[str]) -> None:
        self.path = str(path)
        self.reasons = reasons
        super().__init__(f"{path}: vLLM cannot serve this adapter: " + "; ".join(reasons))


class ConfigError(FinetuneError):
    pass
