"""Every bench stops at once with one line and a non-zero status when an input is missing (a fresh
clone has no ../shared chat data), instead of a traceback or a hang."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MISSING = "/nonexistent/shared/data/live-chat.csv"  # where a default input lives, but absent

# Each bench with the input a newcomer may lack; a new bench must be added here to be checked.
MISSING_INPUTS: dict[str, list[str]] = {
    "concurrency.py": ["--personas", "/nonexistent/personas"],
    "dashboard_lag.py": ["--csv", MISSING],
    "embedded_latency.py": ["--csv", MISSING],
    "first_reply_latency.py": ["--csv", MISSING],
    "persona_bleed.py": ["--csv", MISSING],
    "reply_ngrams.py": ["--csv", MISSING],
    "embedding_speed.py": ["--csv", MISSING],
    "barge_in.py": ["--host-wav", "/nonexistent/host.wav"],
    "flood.py": ["--csv", MISSING],
    "hearing_contention.py": ["--sentences", "/nonexistent/sentences.tsv"],
    "hearing_wer.py": ["--recording", "/nonexistent/two_cities.wav"],
    "end_silence.py": ["--recording", "/nonexistent/two_cities.wav"],
    "forget_latency.py": ["/nonexistent/costar.sqlite3"],
    "long_stream.py": [MISSING],
    "on_stage_latency.py": ["--csv", MISSING],
    "prefix_reuse.py": ["--csv", MISSING],
    "recall.py": ["--filler", MISSING],
    "recall_latency.py": ["--csv", MISSING],
    "train_throughput.py": ["--card", "/nonexistent/card.yaml"],
    "voice_loop.py": ["--sentences", "/nonexistent/sentences.tsv"],
    "youtube_flood.py": ["--csv", MISSING],
}


def test_every_bench_is_checked_for_missing_inputs() -> None:
    benches = {path.name for path in (REPO / "bench").glob("*.py")} - {"__init__.py", "inputs.py"}
    assert benches == set(MISSING_INPUTS)


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("bench", "arguments"), sorted(MISSING_INPUTS.items()))
def test_a_bench_without_its_input_exits_2_with_one_line(bench: str, arguments: list[str]) -> None:
    finished = subprocess.run(
        [sys.executable, str(REPO / "bench" / bench), *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=150,  # a hang fails here instead of holding `make test`
    )
    lines = finished.stderr.strip().splitlines()
    assert finished.returncode == 2, finished.stderr
    assert len(lines) == 1 and "no such file" in lines[0] and arguments[-1] in lines[0], lines
    assert "shared chat data" in lines[0] or "shared" not in arguments[-1]
