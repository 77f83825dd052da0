"""bench/recall.py runs in-process on a tiny facts file and finds what note-able disclosures said."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "recall.py"
RESULT = re.compile(r"^RESULT recall=(\d\.\d{3}) answer_rate=(\S+) items=(\d+) gap=(\d+) restart=(true|false)$")

FACTS = [
    {
        "author": "pixel_pirate42",
        "disclosure": "I have two rabbits named Salt and Pepper",
        "question": "pip, what are my pets called?",
        "answer": "Salt",
    },
    {
        "author": "grim_noodle",
        "disclosure": "I live in Glasgow, it rains every single day here",
        "question": "pip, which city is home for me?",
        "answer": "Glasgow",
    },
    {
        "author": "orbitalpancake",
        "disclosure": "my hamster is called Professor Nibbles",
        "question": "pip, what is my hamster called?",
        "answer": "Nibbles",
    },
]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_recall", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    facts = tmp_path / "facts.jsonl"
    facts.write_text("".join(json.dumps(fact) + "\n" for fact in FACTS), encoding="utf-8")
    filler = tmp_path / "chat.csv"
    with filler.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video_id", "author", "message", "published_at"])
        for n in range(40):  # fewer rows than the gaps need: the bench cycles them
            writer.writerow(["v", f"viewer{n % 9}", f"chat line {n} about the boss fight", "2025-03-18T01:06:00+08:00"])
    return facts, filler


@pytest.mark.parametrize("restart", [False, True])
def test_recall_bench_finds_noted_disclosures(
    bench: ModuleType, inputs: tuple[Path, Path], restart: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    facts, filler = inputs
    argv = ["--facts", str(facts), "--filler", str(filler), "--gap", "50", "--tokens", "approx"]
    assert bench.main(argv + (["--restart"] if restart else [])) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    result = RESULT.match(lines[-1])
    assert result is not None, lines[-1]
    recall, answer_rate, items, gap, restarted = result.groups()
    assert (answer_rate, items, gap, restarted) == ("n/a", "3", "50", "true" if restart else "false")
    assert float(recall) == 1.0  # every answer is in a note-able disclosure


def test_recall_bench_refuses_a_bad_row(
    bench: ModuleType, inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    facts, filler = inputs
    bad = tmp_path / "bad.jsonl"
    bad.write_text(facts.read_text(encoding="utf-8") + '{"author": "x", "disclosure": "hi"}\n', encoding="utf-8")
    assert bench.main(["--facts", str(bad), "--filler", str(filler), "--gap", "5"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: {bad}:4: ") and "question" in error and "\n" not in error
