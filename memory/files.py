"""The database's files on disk: created private, and checked writable before the bot starts.

Chat lines, notes and names are the viewers' data: the database is created readable by its owner
only (0600). SQLite gives the ``-wal`` and ``-shm`` files it creates next to it the same mode as
the database file, so they are private too. A database the bot cannot write would let it start
and then refuse every line; it is refused at open instead, with one line that says what to fix.
"""

from __future__ import annotations

import os
from pathlib import Path

from memory.errors import DatabaseUnavailable

__all__ = ["create_private", "ensure_writable", "sidecar_paths"]

PRIVATE = 0o600


def sidecar_paths(path: Path) -> tuple[Path, Path]:
    """SQLite's write-ahead log and shared-memory index for the database at ``path``."""
    return Path(f"{path}-wal"), Path(f"{path}-shm")


def create_private(path: Path) -> None:
    """Create an empty database file with mode 0600, unless one is there already.

    ``O_EXCL`` with ``O_NOFOLLOW`` never writes through a link someone left in its place.
    """
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE)
    except FileExistsError:
        return
    except OSError as exc:
        raise DatabaseUnavailable(f"cannot create the memory database {path}: {exc.strerror}") from exc
    os.close(descriptor)


def ensure_writable(path: Path) -> None:
    """Refuse a database file (or its folder, where SQLite keeps its log) this process cannot write."""
    for needed in (path.parent, path, *sidecar_paths(path)):
        if needed.exists() and not os.access(needed, os.W_OK):
            raise DatabaseUnavailable(
                f"the memory database {path} is read-only ({needed} is not writable by this user):"
                " make it writable or set COSTAR_MEMORY_DB_PATH to a writable place"
            )
