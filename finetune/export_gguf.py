"""Turn a PEFT LoRA adapter into the GGUF adapter llama.cpp loads (the llamacpp backend, Ollama, LM Studio).

The adapter must pass ``python -m finetune.check``. The GGUF is written next to the safetensors as
adapter_model.gguf unless --out says otherwise; the llamacpp backend uses that file when it is at
least as new as the safetensors (and converts on its own otherwise).

python -m finetune.export_gguf outputs/adapters/pip
python -m finetune.export_gguf outputs/adapters/pip --base-gguf models/Llama-3.2-1B-Instruct-Q4_K_M.gguf --out pip.gguf
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from engine.errors import SettingsError
from engine.serving.adapter_report import inspect_adapter
from engine.serving.gguf_lora import export_lora_gguf
from engine.serving.model_store import gguf_model_path

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m finetune.export_gguf", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "adapter", type=Path, help="adapter folder with adapter_config.json + adapter_model.safetensors"
    )
    parser.add_argument(
        "--base-gguf",
        type=Path,
        default=None,
        help="the base model's GGUF the adapter was trained for (default: the packaged SmolLM2 GGUF)",
    )
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: ADAPTER/adapter_model.gguf)")
    args = parser.parse_args(argv)
    report = inspect_adapter(args.adapter)
    if not report.vllm_loadable:
        print(report.verdict(), file=sys.stderr)
        return 1
    try:
        exported = export_lora_gguf(args.adapter, gguf_model_path(args.base_gguf), args.out)
    except SettingsError as exc:
        print(f"cannot export {args.adapter}: {exc}", file=sys.stderr)
        return 1
    print(
        f"OK: wrote {exported.path} ({exported.architecture}, rank {exported.rank}, alpha {exported.alpha:g}, "
        f"{exported.tensors} tensors)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
