"""bench/recall.py runs in-process on a tiny facts file and finds what note-able disclosures said."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "recall.py"
RESULT = re.compile(r"^RESULT recall=(\d\.\d{3}) answer_rate=(\S+) items=(\d+) gap=(\d+) restart=(true|false)$")
KIND_KEY = re.compile(r" recall_(\w+)=(\d\.\d{3})")
ITEM_ROW = re.compile(r"^\s*\d+ \S+ .+? (pet|home|trade|-)\s+(?:note|fts)\s+(hit|MISS)\b")

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


# Two kinds, one of them with the older line it corrects and distractors said before the disclosure.
KINDED_FACTS: list[dict[str, Any]] = [
    {**FACTS[0], "kind": "pet"},
    {**FACTS[2], "kind": "pet"},
    {
        "author": "harbourside_hb",
        "disclosure": "actually I moved to Cardiff in the summer, forgot to say",
        "question": "pip, where do I live?",
        "answer": "Cardiff",
        "kind": "home",
        "also_said": ["I live in Bristol, near the harbour", "Bristol traffic is the worst"],
    },
    {
        "author": "wiring_wes",
        "disclosure": "rewiring houses all week, sparky life",
        "question": "pip, what do I do for work?",
        "answer": "sparky",
        "kind": "trade",
    },
]


def _write_facts(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_recall_bench_reports_recall_per_kind(
    bench: ModuleType, inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    facts = _write_facts(tmp_path / "kinded.jsonl", KINDED_FACTS)
    assert bench.main(["--facts", str(facts), "--filler", str(inputs[1]), "--gap", "30", "--tokens", "approx"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    rows = [match.groups() for match in map(ITEM_ROW.match, lines) if match]
    assert [kind for kind, _ in rows] == ["pet", "pet", "home", "trade"]
    expected = {
        kind: sum(hit == "hit" for k, hit in rows if k == kind) / sum(k == kind for k, _ in rows) for kind, _ in rows
    }
    assert RESULT.match(lines[-1].split(" recall_")[0]) is not None, lines[-1]
    assert {kind: float(value) for kind, value in KIND_KEY.findall(lines[-1])} == expected
    table = {line.split()[0]: line.split()[1:] for line in lines if line.split()[:1] in (["pet"], ["home"], ["trade"])}
    assert table["pet"][0] == "2" and table["home"][0] == "1" and table["trade"][0] == "1"


def test_recall_bench_feeds_also_said_before_the_disclosure(bench: ModuleType, tmp_path: Path) -> None:
    facts = bench.load_facts(_write_facts(tmp_path / "kinded.jsonl", KINDED_FACTS))
    feed = bench.build_feed(facts, [("someone", "filler")], 3, 0.0, 7, bench.datetime.now(bench.UTC))
    texts = [(event.author_name, event.text) for event in feed]
    at = texts.index(("harbourside_hb", KINDED_FACTS[2]["disclosure"]))
    assert texts[at - 2 : at] == [("harbourside_hb", said) for said in KINDED_FACTS[2]["also_said"]]
    assert len(feed) == len(KINDED_FACTS) * (3 + 1) + 2
    assert [event.sent_at for event in feed] == sorted(event.sent_at for event in feed)  # older lines first


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({"also_said": ["Cardiff is home"]}, "the answer 'Cardiff' is in an also_said line"),
        ({"also_said": "I live in Bristol"}, "also_said must be a list of non-empty strings"),
        ({"kind": "two words"}, "kind must be a single word"),
    ],
)
def test_recall_bench_refuses_a_bad_optional_field(
    bench: ModuleType,
    inputs: tuple[Path, Path],
    tmp_path: Path,
    extra: dict[str, object],
    why: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    facts = _write_facts(tmp_path / "bad.jsonl", [*KINDED_FACTS[:2], {**KINDED_FACTS[2], **extra}])
    assert bench.main(["--facts", str(facts), "--filler", str(inputs[1]), "--gap", "5"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: {facts}:3: ") and why in error, error


@pytest.mark.model
def test_recall_bench_asks_the_make_run_backend(
    bench: ModuleType, inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    facts = _write_facts(tmp_path / "one.jsonl", [KINDED_FACTS[0]])
    assert bench.main(["--facts", str(facts), "--filler", str(inputs[1]), "--gap", "5", "--model", "llamacpp"]) == 0
    out = capsys.readouterr().out
    assert "(llamacpp, temperature 0)" in out
    result = RESULT.match(out.strip().splitlines()[-1].split(" recall_")[0])
    assert result is not None and result.group(2) in ("0.000", "1.000")


def test_each_text_once_gives_the_models_own_rows_and_runs_it_once_per_distinct_line(bench: ModuleType) -> None:
    import numpy as np

    class Counting:
        name, dimensions = "counting", 2

        def __init__(self) -> None:
            self.seen: list[str] = []

        def embed(self, texts: list[str]) -> np.ndarray:
            self.seen += texts
            return np.array([[len(text), 1.0] for text in texts], dtype=np.float32)

    inner = Counting()
    once = bench.EachTextOnce(inner)
    first = once.embed(["lol", "my cat is Miso", "lol"])
    again = once.embed(["my cat is Miso", "gg"])
    assert inner.seen == ["lol", "my cat is Miso", "gg"]
    assert first.tolist() == [[3, 1], [14, 1], [3, 1]] and again.tolist() == [[14, 1], [2, 1]]
