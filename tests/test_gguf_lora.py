"""PEFT LoRA → GGUF adapter: llama.cpp's names, metadata and row order, and llama.cpp loads it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.serving.gguf_lora import export_lora_gguf
from engine.serving.model_store import find_smollm2_gguf
from finetune.export_gguf import main as export_main

pytestmark = pytest.mark.model  # exports against, and loads, the packaged SmolLM2 GGUF

HIDDEN, KV_WIDTH, RANK = 576, 192, 8  # SmolLM2-135M: 9 query heads and 3 KV heads of 64


def _peft_adapter(folder: Path, **config: object) -> dict[str, np.ndarray]:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    prefix = "base_model.model.model.layers.0.self_attn"
    # float16, as PEFT saves costar's adapters: the export writes f16, so the values come through exactly
    weights = {
        f"{prefix}.q_proj.lora_A.weight": rng.standard_normal((RANK, HIDDEN), dtype=np.float32),
        f"{prefix}.q_proj.lora_B.weight": rng.standard_normal((HIDDEN, RANK), dtype=np.float32),
        f"{prefix}.k_proj.lora_A.weight": rng.standard_normal((RANK, HIDDEN), dtype=np.float32),
        f"{prefix}.k_proj.lora_B.weight": rng.standard_normal((KV_WIDTH, RANK), dtype=np.float32),
        f"{prefix}.v_proj.lora_A.weight": rng.standard_normal((RANK, HIDDEN), dtype=np.float32),
        f"{prefix}.v_proj.lora_B.weight": rng.standard_normal((KV_WIDTH, RANK), dtype=np.float32),
    }
    weights = {name: tensor.astype(np.float16) for name, tensor in weights.items()}
    folder.mkdir(parents=True)
    base = {"peft_type": "LORA", "r": RANK, "lora_alpha": 16, "target_modules": ["q_proj", "k_proj", "v_proj"]}
    (folder / "adapter_config.json").write_text(json.dumps({**base, **config}), encoding="utf-8")
    save_file(weights, str(folder / "adapter_model.safetensors"))
    return weights


def _rows_in_rotary_pairs(rows: np.ndarray, heads: int) -> np.ndarray:
    """Hugging Face keeps each head's rotary halves apart; llama.cpp interleaves them."""
    head = rows.shape[0] // heads
    return np.concatenate(
        [
            np.stack([block[: head // 2], block[head // 2 :]], axis=1).reshape(head, -1)
            for block in np.split(rows, heads)
        ]
    )


def test_the_export_names_tensors_as_llama_cpp_does_and_keeps_alpha(tmp_path: Path) -> None:
    from gguf import GGMLQuantizationType, GGUFReader

    weights = _peft_adapter(tmp_path / "pip")
    exported = export_lora_gguf(tmp_path / "pip", find_smollm2_gguf())

    reader = GGUFReader(exported.path)
    metadata = {key: reader.fields[key].contents() for key in ("general.type", "adapter.type", "adapter.lora.alpha")}
    assert metadata == {"general.type": "adapter", "adapter.type": "lora", "adapter.lora.alpha": 16.0}
    tensors = {tensor.name: np.asarray(tensor.data) for tensor in reader.tensors}
    assert {tensor.tensor_type for tensor in reader.tensors} == {GGMLQuantizationType.F16}  # llama.cpp's fast path
    prefix = "base_model.model.model.layers.0.self_attn"
    assert set(tensors) == {f"blk.0.attn_{m}.weight.lora_{ab}" for m in "qkv" for ab in "ab"}
    assert np.array_equal(tensors["blk.0.attn_v.weight.lora_b"], weights[f"{prefix}.v_proj.lora_B.weight"])
    assert np.array_equal(tensors["blk.0.attn_q.weight.lora_a"], weights[f"{prefix}.q_proj.lora_A.weight"])
    expected_q = _rows_in_rotary_pairs(weights[f"{prefix}.q_proj.lora_B.weight"], heads=9)
    expected_k = _rows_in_rotary_pairs(weights[f"{prefix}.k_proj.lora_B.weight"], heads=3)
    assert np.array_equal(tensors["blk.0.attn_q.weight.lora_b"], expected_q)
    assert np.array_equal(tensors["blk.0.attn_k.weight.lora_b"], expected_k)


def test_an_exported_adapter_loads_in_llama_cpp_and_changes_its_output(tmp_path: Path) -> None:
    from llama_cpp import Llama

    from engine.backends.llama_adapters import LlamaAdapters

    _peft_adapter(tmp_path / "pip")
    assert export_main([str(tmp_path / "pip")]) == 0
    llm = Llama(str(find_smollm2_gguf()), n_ctx=256, logits_all=True, verbose=False, n_threads=1)
    adapters = LlamaAdapters(tmp_path, find_smollm2_gguf())
    adapters.attach(llm)
    ids = llm.tokenize(b"Hello, Pip!", add_bos=False)
    logits = {}
    for name, adapter in (("adapted", str(tmp_path / "pip" / "adapter_model.gguf")), ("base", None)):
        adapters.activate(adapter)
        llm.reset()
        llm.eval(ids)
        logits[name] = np.array(llm.scores[: len(ids)])
    assert not np.allclose(logits["adapted"], logits["base"])


def test_the_export_refuses_what_llama_cpp_cannot_serve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _peft_adapter(tmp_path / "dora", use_dora=True)
    assert export_main([str(tmp_path / "dora")]) == 1
    assert "DoRA" in capsys.readouterr().err
    assert not (tmp_path / "dora" / "adapter_model.gguf").exists()
