"""Storage faults as they happen on a real machine: another program locking the database, a full
disk, a read-only mount.

``locked_by_another_program(path, seconds)`` starts a separate Python process that takes the
database's write lock and keeps it; ``tiny_disk(folder)`` mounts a small tmpfs there (root only:
the test is skipped with the reason otherwise); ``fill(disk)`` takes every free byte until it is
handed back; ``read_only(disk)`` remounts it read-only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["fill", "locked_by_another_program", "read_only", "tiny_disk"]

_HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
db.execute("CREATE TABLE IF NOT EXISTS other_program (x)")  # a real write: the lock is ours
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
"""


@contextlib.contextmanager
def locked_by_another_program(path: Path, seconds: float) -> Iterator[None]:
    """The database's write lock is held by another process for ``seconds`` from entering; leaving waits for it."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.wait(timeout=seconds + 30)


@contextlib.contextmanager
def tiny_disk(folder: Path, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``folder`` (skips the test where mounting is not allowed)."""
    if os.geteuid() != 0:
        pytest.skip("a full or read-only disk is simulated with a tiny tmpfs, and mounting one needs root")
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@contextlib.contextmanager
def fill(disk: Path) -> Iterator[None]:
    """Take every free byte of ``disk`` while inside; the space comes back on leaving."""
    filler = disk / "filler"
    chunk = b"\0" * 65_536
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        while True:  # a short write takes the last bytes; the next one fails
            os.write(descriptor, chunk)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(descriptor)
    try:
        yield
    finally:
        filler.unlink()


def read_only(disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
