"""Small LoRA adapters for SmolLM2, saved exactly as ``finetune.train`` saves them, in seconds.

Training even a few steps costs half a minute per adapter on two cores; what the serving tests need
is a real PEFT adapter folder (``adapter_config.json`` with ``lora_alpha``, ``adapter_model.safetensors``)
whose weights change the model's output. PEFT starts ``lora_B`` at zero (an adapter that changes
nothing), so ``lora_B`` is drawn from a fixed seed instead, small enough that the model still writes
words: different seeds give different, reproducible adapters.
"""

from __future__ import annotations

from pathlib import Path

import yaml

__all__ = ["TEST_ADAPTERS", "bind_test_adapters", "build_lora"]

SHIPPED_CARDS = Path(__file__).resolve().parents[1] / "personas" / "cards"
TEST_ADAPTERS = {"pip": ("pip-lora", 1), "captain-brine": ("brine-lora", 2)}  # persona -> (adapter name, seed)


def build_lora(model_dir: Path, out_dir: Path, *, seed: int, rank: int = 8, scale: float = 0.02) -> Path:
    """Write a rank-``rank`` all-linear LoRA for the model in ``model_dir`` to ``out_dir``."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model

    from finetune.modeling import load_causal_lm

    torch.manual_seed(seed)
    config = LoraConfig(
        task_type=TaskType.CAUSAL_LM, r=rank, lora_alpha=2 * rank, target_modules="all-linear", bias="none"
    )
    model = get_peft_model(load_causal_lm(str(model_dir)), config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    # The same call finetune.train makes: vLLM refuses adapters that carry embedding layers.
    model.save_pretrained(out_dir, save_embedding_layers=False)
    return out_dir


def bind_test_adapters(cards_dir: Path, model_dir: Path) -> Path:
    """Copies of the shipped Pip and Captain Brine cards in ``cards_dir``, each bound to its own
    small adapter under ``cards_dir/adapters`` (a path relative to the card, as users write it)."""
    for persona_id, (adapter, seed) in TEST_ADAPTERS.items():
        card = yaml.safe_load((SHIPPED_CARDS / f"{persona_id}.yaml").read_text(encoding="utf-8"))
        build_lora(model_dir, cards_dir / "adapters" / persona_id, seed=seed)
        card["model"] = {"adapter": {"name": adapter, "path": f"adapters/{persona_id}"}}
        (cards_dir / f"{persona_id}.yaml").write_text(yaml.safe_dump(card), encoding="utf-8")
    return cards_dir
