"""The one place costar's errors become words for a person (the CLI and every adapter use it).

Each layer has its own documented tree, translated at its boundary:

- :mod:`engine.errors` — ``EngineError`` (settings, personas, memory, the model backend);
- :mod:`memory.errors` — ``MemoryStoreError`` (the database file: missing folder, locked, full);
- :mod:`personas.errors` — ``PersonaError`` (a card file, naming the file and field);
- :mod:`finetune.errors` — ``FinetuneError`` (data, adapters, training options);
- :class:`bot.transcript.TranscriptError` — a replay transcript line (naming file:line).
"""

from __future__ import annotations

from bot.transcript import TranscriptError
from engine.errors import EngineError
from memory.errors import MemoryStoreError
from personas.errors import PersonaError

__all__ = ["USER_ERRORS", "one_line"]

# Errors raised on purpose, whose message already says what is wrong and how to fix it.
USER_ERRORS: tuple[type[Exception], ...] = (EngineError, MemoryStoreError, PersonaError, TranscriptError)


def one_line(error: BaseException) -> str:
    """The error's message on one line (SQLite and pydantic messages can span several)."""
    return " ".join(str(error).split()) or type(error).__name__
