"""Loading the base model and tokenizer for training, evaluation and benchmarks."""

from __future__ import annotations

from typing import Any

__all__ = ["load_causal_lm", "load_tokenizer", "resolve_base_model"]


def resolve_base_model(base_model: str) -> str:
    """'smollm2' (built in), a local folder, or a Hub id → something ``from_pretrained`` takes."""
    from engine.serving.model_store import resolve_model_path
    from engine.settings import CoreSettings

    return resolve_model_path(base_model, CoreSettings().cache_dir)


def _hub_id(model_path: str) -> str:
    from engine.serving.model_store import DEFAULT_MODEL_HUB_ID, ensure_default_model
    from engine.settings import CoreSettings

    try:
        default_path = ensure_default_model(CoreSettings().cache_dir)
    except Exception:  # no packaged model: then model_path cannot be it either
        return model_path
    return DEFAULT_MODEL_HUB_ID if str(default_path) == str(model_path) else model_path


def load_tokenizer(model_path: str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    return tokenizer


def load_causal_lm(model_path: str, dtype: Any = None, **kwargs: Any) -> Any:
    """Load a causal LM; a GGUF-converted folder is loaded as the plain weights it holds.

    A folder converted from a GGUF by transformers (older costar caches, other tools) can still
    carry ``quantization_config: gguf`` in its config.json although its weights are de-quantised
    float32; transformers then marks the model as quantised and the Trainer refuses to train it.
    Dropping that entry is exact.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_path)
    quantization = getattr(config, "quantization_config", None)
    if isinstance(quantization, dict) and quantization.get("quant_method") == "gguf":
        del config.quantization_config
    model = AutoModelForCausalLM.from_pretrained(model_path, config=config, dtype=dtype or torch.float32, **kwargs)
    # peft records this as base_model_name_or_path: name the real base, not a cache folder.
    model.name_or_path = _hub_id(model_path)
    return model
