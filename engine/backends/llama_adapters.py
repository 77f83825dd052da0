"""Persona LoRA adapters on llama.cpp: found or converted to GGUF, loaded once, switched per request.

A persona's card names a PEFT adapter folder. llama.cpp needs the GGUF form: the folder's own
``adapter_model.gguf`` (``python -m finetune.export_gguf``) when it is at least as new as the
safetensors, otherwise a conversion made once into the cache folder. Each GGUF adapter is loaded
once against the base model (``llama_adapter_lora_init``) and set on the context per request
(``llama_set_adapters_lora``; an empty set is the bare base model), so switching personas never
reloads the base weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from engine.errors import BackendError, SettingsError
from engine.serving.gguf_lora import EXPORT_FORMAT, GGUF_ADAPTER_NAME, export_lora_gguf

__all__ = ["LlamaAdapters", "peft_type_of"]

log = logging.getLogger(__name__)


def peft_type_of(adapter_dir: str | Path) -> str | None:
    """``LORA``, ``PROMPT_TUNING``, …; None when the folder has no readable adapter_config.json."""
    try:
        config = json.loads((Path(adapter_dir) / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return str(config.get("peft_type", "")).upper() or None


class LlamaAdapters:
    def __init__(self, cache_dir: Path, base_gguf: Path) -> None:
        self.cache_dir = cache_dir
        self.base_gguf = base_gguf
        self._llm: Any = None
        self._loaded: dict[str, Any] = {}  # GGUF path -> llama_adapter_lora pointer

    def attach(self, llm: Any) -> None:
        self._llm = llm

    def gguf_for(self, adapter_dir: str | None) -> str | None:
        """The GGUF adapter to use for a request's PEFT folder (None: the base model)."""
        if adapter_dir is None:
            return None
        folder = Path(adapter_dir)
        peft_type = peft_type_of(folder)
        if peft_type != "LORA":
            raise BackendError(f"adapter {folder} is {peft_type or 'unreadable'}; llama.cpp serves LoRA adapters only")
        weights = folder / "adapter_model.safetensors"
        exported = folder / GGUF_ADAPTER_NAME
        if exported.is_file() and (not weights.exists() or exported.stat().st_mtime >= weights.stat().st_mtime):
            return str(exported)
        return str(self._converted(folder, weights))

    def _converted(self, folder: Path, weights: Path) -> Path:
        stat = weights.stat()
        digest = hashlib.sha256(
            f"{folder.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{EXPORT_FORMAT}".encode()
        ).hexdigest()[:16]
        target = self.cache_dir / "llamacpp-adapters" / f"{folder.name}-{digest}.gguf"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = target.with_suffix(".partial")
            try:
                export_lora_gguf(folder, self.base_gguf, staging)
            except SettingsError as exc:
                raise BackendError(f"cannot convert adapter {folder} for llama.cpp: {exc}") from exc
            staging.replace(target)
            log.info("Converted LoRA adapter %s to GGUF at %s", folder, target)
        return target

    def activate(self, gguf_path: str | None) -> None:
        """Set exactly this adapter (or none) on the context."""
        from llama_cpp import llama_cpp as c

        if gguf_path is None:
            c.llama_set_adapters_lora(self._llm.ctx, None, 0, None)
            return
        if gguf_path not in self._loaded:
            pointer = c.llama_adapter_lora_init(self._llm.model, gguf_path.encode("utf-8"))
            if not pointer:
                raise BackendError(f"llama.cpp refused the LoRA adapter {gguf_path} (built for another model?)")
            self._loaded[gguf_path] = pointer
            log.info("Loaded LoRA adapter %s into llama.cpp", gguf_path)
        adapters = (c.llama_adapter_lora_p_ctypes * 1)(self._loaded[gguf_path])
        scales = (c.ctypes.c_float * 1)(1.0)
        if c.llama_set_adapters_lora(self._llm.ctx, adapters, 1, scales):
            raise BackendError(f"llama.cpp could not set the LoRA adapter {gguf_path}")
