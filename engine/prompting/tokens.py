"""Counting tokens the way the model will, without importing torch.

The ``tokenizers`` library reads a model folder's ``tokenizer.json`` directly, so the remote
(vLLM) deployment counts exactly too without transformers installed. Without a tokenizer file we
fall back to a deliberately pessimistic estimate and say so once in the log.
"""

from __future__ import annotations

import ctypes
import logging
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from engine.errors import SettingsError

__all__ = [
    "GENERATION_PROMPT_TOKENS",
    "MESSAGE_OVERHEAD_TOKENS",
    "ApproxTokenCounter",
    "GgufVocabCounter",
    "TokenCounter",
    "TokenizerCounter",
    "load_token_counter",
    "template_allowance",
]

log = logging.getLogger(__name__)

# Chat templates wrap each message in role markers (ChatML: "<|im_start|>user\n" ... "<|im_end|>\n",
# 5 tokens); 8 leaves room for templates with longer headers.
MESSAGE_OVERHEAD_TOKENS = 8
GENERATION_PROMPT_TOKENS = 8  # "<|im_start|>assistant\n" and the like


class ChatMessageLike(Protocol):
    @property
    def content(self) -> str: ...


class TokenCounter(Protocol):
    def count(self, text: str) -> int: ...


class TokenizerCounter:
    def __init__(self, tokenizer_json: Path) -> None:
        from tokenizers import Tokenizer

        self.path = tokenizer_json
        self._tokenizer = Tokenizer.from_file(str(tokenizer_json))
        # History lines are counted again every turn; the cache makes that free.
        self.count = lru_cache(maxsize=65536)(self._count)  # type: ignore[method-assign]

    def _count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def count(self, text: str) -> int:  # replaced per instance by the cached version
        return self._count(text)


class GgufVocabCounter:
    """Counts with a GGUF model's own vocabulary (llama.cpp reads only the vocabulary, not the weights)."""

    def __init__(self, gguf_path: Path) -> None:
        from llama_cpp import Llama

        self.path = gguf_path
        try:
            with _llama_cpp_log_muted():
                self._vocab = Llama(str(gguf_path), vocab_only=True, verbose=False)
        except (ValueError, RuntimeError) as exc:  # llama.cpp's "Failed to load model from file"
            raise SettingsError(
                f"llama.cpp cannot read {gguf_path}: it is not a complete GGUF model (a download cut short?); "
                "point COSTAR_BACKEND_MODEL_PATH at a .gguf file"
            ) from exc
        self.count = lru_cache(maxsize=65536)(self._count)  # type: ignore[method-assign]

    def _count(self, text: str) -> int:
        # special=True: the rendered prompt is tokenised that way too (as by tokenizer.json).
        return len(self._vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def count(self, text: str) -> int:  # replaced per instance by the cached version
        return self._count(text)


@contextmanager
def _llama_cpp_log_muted() -> Iterator[None]:
    """Drop llama.cpp's log lines while a vocabulary alone is loaded.

    A vocabulary-only model reports a training context of 0, so llama.cpp warns
    ``n_ctx_seq (512) > n_ctx_train (0) -- possible training context overflow`` on every start,
    though without weights nothing can overflow. ``verbose=False`` does not hide it: llama-cpp-python
    0.3's log filter still numbers ggml's levels the old way and lets WARN through as ERROR.
    """
    import llama_cpp
    from llama_cpp._logger import llama_log_callback

    global _DROP_LLAMA_LOG
    if _DROP_LLAMA_LOG is None:
        _DROP_LLAMA_LOG = llama_cpp.llama_log_callback(_drop_llama_log)
    llama_cpp.llama_log_set(_DROP_LLAMA_LOG, ctypes.c_void_p(0))
    try:
        yield
    finally:
        llama_cpp.llama_log_set(llama_log_callback, ctypes.c_void_p(0))


def _drop_llama_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    return None


_DROP_LLAMA_LOG: Any = None  # the C callback, made on first use (and kept alive: llama.cpp holds it)


class ApproxTokenCounter:
    """About 3 bytes per token: over-counts English (≈4) so budgets hold for unknown tokenizers."""

    def count(self, text: str) -> int:
        return math.ceil(len(text.encode("utf-8")) / 3)


def load_token_counter(tokenizer_path: str | Path | None) -> TokenCounter:
    if tokenizer_path:
        candidate = Path(tokenizer_path).expanduser()
        if candidate.is_dir():
            candidate = candidate / "tokenizer.json"
        if candidate.suffix == ".gguf" and candidate.is_file():
            return GgufVocabCounter(candidate)
        if candidate.is_file():
            return TokenizerCounter(candidate)
        log.warning(
            "No tokenizer.json at %s; counting tokens approximately (set COSTAR_BACKEND_TOKENIZER)", tokenizer_path
        )
    else:
        log.warning("No tokenizer configured; counting tokens approximately (set COSTAR_BACKEND_TOKENIZER)")
    return ApproxTokenCounter()


def template_allowance(counter: TokenCounter, messages: Iterable[ChatMessageLike]) -> int:
    """The tokens the prompt builder reserves for these messages and the reply's opening marker."""
    return sum(counter.count(message.content) + MESSAGE_OVERHEAD_TOKENS for message in messages) + (
        GENERATION_PROMPT_TOKENS
    )
