"""The evaluation report: a Markdown table laid out like the seed HP paper's, JSON, and a PNG chart."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from finetune.metrics import METEOR_NOTICE

__all__ = ["COLUMNS", "markdown_table", "write_chart", "write_reports"]

# (field, header, format); the first four follow the HP paper: BLEU, METEOR, perplexity, MC accuracy.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("bleu", "BLEU", "{:.2f}"),
    ("meteor", "METEOR", "{:.2f}"),
    ("perplexity", "Perplexity ↓", "{:.2f}"),
    ("mc_accuracy", "MC accuracy", "{:.1%}"),
    ("chrf", "chrF", "{:.2f}"),
    ("distinct_1", "distinct-1", "{:.3f}"),
    ("distinct_2", "distinct-2", "{:.3f}"),
)


def _cell(value: Any, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def markdown_table(results: Sequence[Any]) -> str:
    header = "| Model config | " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(COLUMNS)
    rows = [
        f"| {r.config} | " + " | ".join(_cell(getattr(r, key), fmt) for key, _, fmt in COLUMNS) + " |" for r in results
    ]
    return "\n".join([header, rule, *rows])


def write_chart(results: Sequence[Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 4, figsize=(14, 6))
    names = [r.config for r in results]
    for axis, (key, title, _) in zip(axes.flat, COLUMNS, strict=False):
        values = [getattr(r, key) for r in results]
        axis.bar(names, [0.0 if v is None else v for v in values], color=["#999999", *["#4c72b0"] * (len(names) - 1)])
        axis.set_title(title + (" (n/a)" if all(v is None for v in values) else ""))
        axis.tick_params(axis="x", labelrotation=20)
    axes.flat[-1].axis("off")
    figure.suptitle("costar fine-tuning: held-out evaluation")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def write_reports(results: Sequence[Any], out_dir: Path, dataset: str = "") -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    table = markdown_table(results)
    counts = f"{results[0].replies} replies, {results[0].mc_items} multiple-choice items" if results else ""
    notes = [f"Held-out set: {dataset} ({counts})."] if dataset else []
    if any(r.meteor is None for r in results):
        notes.append(f"n/a: {METEOR_NOTICE}")
    markdown = "\n\n".join([table, *notes])
    (out_dir / "report.md").write_text(markdown + "\n", encoding="utf-8")
    payload = {
        "dataset": dataset,
        "results": [asdict(r) for r in results],
        "meteor_notice": METEOR_NOTICE if any(r.meteor is None for r in results) else None,
    }
    (out_dir / "report.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
    write_chart(results, out_dir / "report.png")
    return markdown
