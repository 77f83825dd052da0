"""The evaluation report: a Markdown table laid out like the seed HP paper's, JSON, and a PNG chart."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from finetune.metrics import METEOR_NOTICE

__all__ = ["COLUMNS", "SIDE_BY_SIDE", "markdown_table", "side_by_side", "write_chart", "write_reports"]

# How many held-out prompts report.md shows with every configuration's reply next to the true one.
SIDE_BY_SIDE = 10

# (field, header, format); the first four follow the HP paper: BLEU, METEOR, perplexity, MC accuracy.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("bleu", "BLEU", "{:.2f}"),
    ("meteor", "METEOR", "{:.2f}"),
    ("perplexity", "Perplexity ↓", "{:.2f}"),
    ("mc_accuracy", "MC accuracy", "{:.1%}"),
    ("mc_interval", "MC 95% CI", "{0[0]:.1%}–{0[1]:.1%}"),
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


def _cell_text(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|") or "(empty)"


def side_by_side(results: Sequence[Any], count: int = SIDE_BY_SIDE) -> str:
    """``count`` held-out prompts spread over the set: the true reply, then each configuration's."""
    if not results or not results[0].samples:
        return ""
    total = len(results[0].samples)
    picked = sorted({round(i * (total - 1) / max(count - 1, 1)) for i in range(min(count, total))})
    blocks = []
    for number, index in enumerate(picked, start=1):
        sample = results[0].samples[index]
        rows = [f"| true reply | {_cell_text(sample['reference'])} |"]
        rows += [f"| {r.config} | {_cell_text(r.samples[index]['reply'])} |" for r in results if index < len(r.samples)]
        blocks.append(f"**{number}.** {_cell_text(sample['context'])}\n\n| | reply |\n|---|---|\n" + "\n".join(rows))
    return "## Side by side: held-out prompts\n\n" + "\n\n".join(blocks)


def write_chart(results: Sequence[Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 4, figsize=(14, 6))
    names = [r.config for r in results]
    charted = [column for column in COLUMNS if column[0] != "mc_interval"]
    for axis, (key, title, _) in zip(axes.flat, charted, strict=False):
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
    samples = side_by_side(results)
    (out_dir / "report.md").write_text("\n\n".join([markdown, samples]).strip() + "\n", encoding="utf-8")
    payload = {
        "dataset": dataset,
        "results": [asdict(r) | {"mc_interval": r.mc_interval} for r in results],
        "meteor_notice": METEOR_NOTICE if any(r.meteor is None for r in results) else None,
    }
    (out_dir / "report.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
    write_chart(results, out_dir / "report.png")
    return markdown
