"""PEFT LoRA adapter → GGUF LoRA adapter, the format llama.cpp loads (``--lora``, ``lora_path``).

llama.cpp's own converter (``convert_lora_to_gguf.py`` in its repository) is not shipped with
llama-cpp-python and needs torch; this one reads the safetensors with numpy and writes with the
``gguf`` package. What it must match (llama.cpp's converter and ``src/llama-adapter.cpp``):

- metadata ``general.type=adapter``, ``adapter.type=lora``, ``adapter.lora.alpha`` (llama.cpp scales
  each product by alpha / rank, as PEFT does; rsLoRA's alpha / sqrt(rank) is folded into alpha);
- each base weight ``W`` (out × in) gets ``<gguf name>.lora_a`` = PEFT's ``lora_A`` (rank × in)
  and ``<gguf name>.lora_b`` = ``lora_B`` (out × rank), named as the base GGUF names ``W``
  (``model.layers.3.self_attn.q_proj`` → ``blk.3.attn_q.weight``, via gguf's ``TensorNameMap``);
- for the ``llama`` architecture the base converter permuted the rows of the q and k projections
  (llama.cpp's rotary layout differs from Hugging Face's), so the rows of ``lora_b`` are permuted
  the same way, or the adapter would add its update to the wrong rows.

Tensors are written in float16, as llama.cpp's converter does by default: PEFT saves adapters in
the training dtype (fp16 or bf16 for costar's), and on a CPU llama.cpp applies an f16 adapter
faster than an f32 one (SmolLM2 with Pip's adapter, one thread: 48 against 39 tokens/s decoding,
126 against 101 tokens/s prompt evaluation; 60 and 144 with no adapter).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import SettingsError

__all__ = ["EXPORT_FORMAT", "GGUF_ADAPTER_NAME", "LoraExport", "export_lora_gguf"]

GGUF_ADAPTER_NAME = "adapter_model.gguf"  # written next to adapter_model.safetensors by default
# Part of the cache key of converted adapters: a change of what is written converts them again.
EXPORT_FORMAT = "f16-1"
_PEFT_PREFIX = "base_model.model."


@dataclass(frozen=True, slots=True)
class LoraExport:
    path: Path
    architecture: str
    rank: int
    alpha: float
    tensors: int  # lora_a + lora_b tensors written


@dataclass(frozen=True, slots=True)
class _BaseShape:
    architecture: str
    blocks: int
    heads: int
    kv_heads: int


def _read_base(base_gguf: Path) -> _BaseShape:
    from gguf import GGUFReader

    reader = GGUFReader(base_gguf)

    def field(key: str) -> Any:
        found = reader.get_field(key)
        if found is None:
            raise SettingsError(f"{base_gguf} has no {key}: is it a GGUF model file?")
        return found.contents()

    arch = str(field("general.architecture"))
    heads = int(field(f"{arch}.attention.head_count"))
    kv_found = reader.get_field(f"{arch}.attention.head_count_kv")
    return _BaseShape(arch, int(field(f"{arch}.block_count")), heads, int(kv_found.contents()) if kv_found else heads)


def _rope_permute(rows: np.ndarray[Any, Any], heads: int) -> np.ndarray[Any, Any]:
    """The row order llama.cpp's converter gives q/k weights (``LlamaModel.permute``)."""
    return rows.reshape(heads, 2, rows.shape[0] // heads // 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def _lora_config(adapter_dir: Path) -> tuple[int, float]:
    try:
        config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SettingsError(f"cannot read {adapter_dir / 'adapter_config.json'}: {exc}") from exc
    if str(config.get("peft_type", "")).upper() != "LORA":
        raise SettingsError(f"{adapter_dir} is a {config.get('peft_type')} adapter; only LoRA converts to GGUF")
    unsupported = [key for key in ("use_dora", "modules_to_save", "rank_pattern", "alpha_pattern") if config.get(key)]
    if unsupported:
        raise SettingsError(f"{adapter_dir}: {', '.join(unsupported)} set; llama.cpp serves plain LoRA only")
    rank, alpha = int(config["r"]), float(config.get("lora_alpha") or config["r"])
    if config.get("use_rslora"):
        alpha *= math.sqrt(rank)  # rsLoRA scales by alpha / sqrt(r); llama.cpp always divides by r
    return rank, alpha


def _gguf_name(peft_key: str, name_map: Any) -> tuple[str, str]:
    """``base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`` → (``blk.0.attn_q.weight``, ``a``)."""
    stem = peft_key.removeprefix(_PEFT_PREFIX)
    for part, which in ((".lora_A.weight", "a"), (".lora_B.weight", "b")):
        if stem.endswith(part):
            hf_name = stem[: -len(part)] + ".weight"
            name = name_map.get_name(hf_name, try_suffixes=(".weight",))
            if name is None:
                raise SettingsError(f"no llama.cpp tensor for {hf_name}; the adapter targets an unknown module")
            return name, which
    raise SettingsError(f"{peft_key} is not a LoRA A/B tensor (embeddings or whole modules are not supported)")


def export_lora_gguf(adapter_dir: Path, base_gguf: Path, out_path: Path | None = None) -> LoraExport:
    """Write ``adapter_dir``'s LoRA as a GGUF adapter for ``base_gguf``'s architecture."""
    import gguf
    from safetensors.numpy import load_file

    rank, alpha = _lora_config(adapter_dir)
    base = _read_base(base_gguf)
    arch = next((key for key, name in gguf.MODEL_ARCH_NAMES.items() if name == base.architecture), None)
    if arch is None:
        raise SettingsError(f"the gguf package does not know architecture {base.architecture!r}")
    name_map = gguf.get_tensor_name_map(arch, base.blocks)
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    out = out_path or adapter_dir / GGUF_ADAPTER_NAME
    writer = gguf.GGUFWriter(str(out), base.architecture)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for key in sorted(weights):
        name, which = _gguf_name(key, name_map)
        tensor = weights[key].astype(np.float16)
        if which == "b" and base.architecture == "llama" and name.endswith(("attn_q.weight", "attn_k.weight")):
            tensor = _rope_permute(tensor, base.heads if "attn_q" in name else base.kv_heads)
        writer.add_tensor(f"{name}.lora_{which}", np.ascontiguousarray(tensor))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return LoraExport(out, base.architecture, rank, alpha, len(weights))
