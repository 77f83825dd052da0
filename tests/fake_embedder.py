"""A small deterministic stand-in for a sentence embedder, for tests that are not about the model.

Each word (lower-cased, letters and digits) adds a fixed pseudo-random direction, so lines sharing
words are near and lines sharing none are far: enough to test storage, search, forget and the
worker without loading all-MiniLM-L6-v2. It records every batch it was given.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from engine.recall.embedding import normalised

__all__ = ["WordHashEmbedder"]

_WORD = re.compile(r"[^\W_]+")


class WordHashEmbedder:
    name = "test-word-hash"

    def __init__(self, dimensions: int = 64, *, fail: bool = False) -> None:
        self.dimensions = dimensions
        self.fail = fail
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()  # names of the threads that called embed
        self.called_at: list[float] = []  # time.monotonic() of each call

    def _word(self, word: str) -> npt.NDArray[np.float32]:
        seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
        return np.random.default_rng(seed).standard_normal(self.dimensions).astype(np.float32)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.threads.add(threading.current_thread().name)
        self.called_at.append(time.monotonic())
        if self.fail:
            raise RuntimeError("the fake embedder was told to fail")
        self.batches.append(list(texts))
        rows = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for index, text in enumerate(texts):
            for word in _WORD.findall(text.casefold()):
                rows[index] += self._word(word)
        return normalised(rows)
