"""The one place costar's errors become words for a person (the CLI and every adapter use it).

Each layer has its own documented tree, translated at its boundary:

- :mod:`engine.errors` — ``EngineError`` (settings, personas, memory, the model backend);
- :mod:`memory.errors` — ``MemoryStoreError`` (the database file: missing folder, locked, full);
- :mod:`personas.errors` — ``PersonaError`` (a card file, naming the file and field);
- :mod:`finetune.errors` — ``FinetuneError`` (data, adapters, training options);
- :class:`bot.transcript.TranscriptError` — a replay transcript line (naming file:line).
"""

from __future__ import annotations

import aiohttp

from bot.transcript import TranscriptError
from engine.errors import EngineError
from memory.errors import MemoryStoreError
from personas.errors import PersonaError

__all__ = ["NETWORK_ERRORS", "USER_ERRORS", "one_line", "unreachable"]

# Errors raised on purpose, whose message already says what is wrong and how to fix it.
USER_ERRORS: tuple[type[Exception], ...] = (EngineError, MemoryStoreError, PersonaError, TranscriptError)


def one_line(error: BaseException) -> str:
    """The error's message on one line (SQLite and pydantic messages can span several)."""
    return " ".join(str(error).split()) or type(error).__name__


# What a platform library lets through when the network is down, a name does not resolve or the
# service does not answer (discord.py and twitchio both use aiohttp).
NETWORK_ERRORS: tuple[type[Exception], ...] = (aiohttp.ClientError, OSError, TimeoutError)


def unreachable(service: str, error: BaseException, hint: str) -> EngineError:
    """One line for a platform that could not be reached, without the library's traceback.

    Only connection errors' own text is quoted (host and port, "Name or service not known"): a
    request's error can carry its URL, whose query may hold a token.
    """
    if isinstance(error, aiohttp.ClientConnectorError | aiohttp.ServerTimeoutError) or type(error) in (
        OSError,
        TimeoutError,
    ):
        reason = one_line(error)
    else:
        reason = type(error).__name__
    return EngineError(f"cannot reach {service} ({reason}): {hint}")
