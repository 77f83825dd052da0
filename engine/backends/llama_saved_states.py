"""Evaluated system prompts kept on disk, so a restart or a persona switch does not evaluate them again.

A persona's system prompt is the same few hundred tokens at the start of every prompt of every
channel it hosts, and on a 2-core CPU evaluating it is most of a cold first reply (seconds; see
docs/cpu.md#a-warm-first-reply). Once evaluated, its KV cells (llama.cpp's sequence state) are
written to one file here, named by a hash of what they depend on: the model file, the LoRA adapter
file (KV computed under one adapter is wrong under another) and the prompt's tokens. Any change to
the card, the template, the adapter or the model gives a new name, so a stale state is never loaded.

The folder is bounded in bytes: the least recently used files go first. A file that cannot be read
back (cut short by a crash, written by another version) is ignored with one log line and deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
from array import array
from collections.abc import Sequence
from pathlib import Path

from engine.backends.llama_states import ParkedState

__all__ = ["SavedStates", "file_identity"]

log = logging.getLogger(__name__)

_MAGIC = b"costar-kv-1\n"
_SUFFIX = ".kvstate"


def file_identity(path: str | Path | None) -> str:
    """A model or adapter file as a state depends on it: its path, size and modification time."""
    if path is None:
        return "none"
    stat = Path(path).stat()
    return f"{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


class SavedStates:
    def __init__(self, folder: Path, capacity_bytes: int, model_identity: str) -> None:
        self.folder = folder
        self.capacity_bytes = capacity_bytes
        self.model_identity = model_identity

    def key(self, adapter_identity: str, tokens: Sequence[int]) -> str:
        digest = hashlib.sha256()
        for part in (self.model_identity, adapter_identity):
            digest.update(part.encode("utf-8") + b"\0")
        digest.update(array("i", tokens).tobytes())
        return digest.hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / f"{key[:32]}{_SUFFIX}"

    def load(self, adapter_identity: str, adapter: str | None, tokens: Sequence[int]) -> ParkedState | None:
        """The saved state of exactly ``tokens`` under this model and adapter, or None."""
        if self.capacity_bytes == 0:
            return None
        key = self.key(adapter_identity, tokens)
        path = self._path(key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("Ignoring saved prompt state %s: %s", path.name, exc)
            return None
        state = _decode(raw, key, adapter)
        if state is None or list(state.tokens) != list(tokens):
            log.warning("Ignoring saved prompt state %s: unreadable or for another prompt; deleting it", path.name)
            path.unlink(missing_ok=True)
            return None
        os.utime(path)  # recently used: evicted last
        return state

    def save(self, adapter_identity: str, state: ParkedState) -> None:
        if self.capacity_bytes == 0 or len(state.data) > self.capacity_bytes:
            return
        key = self.key(adapter_identity, state.tokens)
        path = self._path(key)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            partial.write_bytes(_encode(key, state))
            partial.replace(path)  # a crash mid-write leaves no half file under the real name
            self._evict()
        except OSError as exc:  # a full or read-only disk costs the next start time, nothing else
            log.warning("Could not save a prompt state in %s: %s", self.folder, exc)

    def _evict(self) -> None:
        files = sorted(self.folder.glob(f"*{_SUFFIX}"), key=lambda path: path.stat().st_mtime_ns)
        total = sum(path.stat().st_size for path in files)
        for oldest in files:
            if total <= self.capacity_bytes:
                break
            total -= oldest.stat().st_size
            oldest.unlink(missing_ok=True)


def _encode(key: str, state: ParkedState) -> bytes:
    header = json.dumps({"key": key, "tokens": len(state.tokens), "data": len(state.data)}).encode("utf-8")
    return b"".join((_MAGIC, struct.pack("<I", len(header)), header, array("i", state.tokens).tobytes(), state.data))


def _decode(raw: bytes, key: str, adapter: str | None) -> ParkedState | None:
    try:
        if not raw.startswith(_MAGIC):
            return None
        offset = len(_MAGIC)
        (header_size,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        header = json.loads(raw[offset : offset + header_size])
        offset += header_size
        tokens = array("i")
        tokens.frombytes(raw[offset : offset + 4 * header["tokens"]])
        offset += 4 * header["tokens"]
        data = raw[offset:]
        if header["key"] != key or len(tokens) != header["tokens"] or len(data) != header["data"]:
            return None
        return ParkedState(adapter, tuple(tokens), data)
    except (ValueError, KeyError, TypeError, struct.error):
        return None
