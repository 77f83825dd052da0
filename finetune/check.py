"""Check that an adapter folder is one vLLM can serve; exit 1 with every reason when it is not.

python -m finetune.check outputs/adapters/pip
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from engine.serving.adapter_report import inspect_adapter

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m finetune.check", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "adapter", nargs="+", help="adapter folder(s) with adapter_config.json + adapter_model.safetensors"
    )
    args = parser.parse_args(argv)
    reports = [inspect_adapter(path) for path in args.adapter]
    for report in reports:
        print(report.verdict())
    return 0 if all(report.vllm_loadable for report in reports) else 1


if __name__ == "__main__":
    raise SystemExit(main())
