"""bench/long_stream.py measures RSS only once everything bounded has filled, and can name the
allocation sites that grew (docs/safety.md, "Memory over a long stream")."""

from __future__ import annotations

import csv
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from bot.app import build_manager, close_manager
from engine.backends.scripted import ScriptedBackend
from engine.base.clock import ManualClock

BENCH = Path(__file__).resolve().parents[1] / "bench" / "long_stream.py"
KEPT = 256
FULL_CACHES = {"normalized_lines": (4096, 4096), "shown_verdicts": (4096, 4096)}


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_long_stream", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_warm_up_waits_for_every_per_channel_table_not_only_the_schedulers(bench: ModuleType) -> None:
    # At 30 simulated minutes the scheduler held 256 channels but the manager's turn table 189:
    # the 64 channels still to come were most of the RSS growth counted as a leak.
    seen = bench.Samples(cache_fill=FULL_CACHES)
    seen.most_channel_state.update(scheduler_channels=KEPT, moderation_policies=KEPT, manager_turns=189)
    assert not bench.filled(seen, KEPT)
    seen.most_channel_state["manager_turns"] = KEPT
    assert bench.filled(seen, KEPT)


def test_warm_up_waits_for_every_per_line_cache(bench: ModuleType) -> None:
    seen = bench.Samples(cache_fill={**FULL_CACHES, "slur_verdicts": (4000, 4096)})
    seen.most_channel_state.update(scheduler_channels=KEPT, manager_turns=KEPT)
    assert not bench.filled(seen, KEPT)


def test_the_report_shows_the_embedding_backlog_filling_after_the_warm_up(bench: ModuleType) -> None:
    # With recall by meaning on, the backlog filling towards its bound was the RSS growth at 120 minutes.
    seen = bench.Samples(
        embed_waiting=[(1000, 100), (33000, 8363), (97000, 20000)], embed_counts={"dropped_backlog": 4}
    )
    line = bench.embed_backlog_line(seen, 33000)
    assert line.startswith("8363 lines at the warm-up, at most 20000, 20000 at the end")
    assert "dropped_backlog 4" in line
    assert "off" in bench.embed_backlog_line(bench.Samples(), 33000)


@pytest.mark.timeout(300)
def test_tracemalloc_option_names_the_sites_that_grew(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chat = tmp_path / "chat.csv"
    with chat.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["author", "message"])
        for n in range(60):
            writer.writerow([f"viewer{n % 7}", f"line {n} about the boss fight"])
    argv = [str(chat), "--minutes", "0.25", "--threads", "3", "--dm-every", "7", "--channels-kept", "4"]
    assert bench.main([*argv, "--tracemalloc", "0.05", "0.25", "--tracemalloc-top", "3"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^tracemalloc: traced Python memory [+-]\d+\.\d{3} MB from line \d+ to \d+", printed, re.M)
    growers = re.findall(r"^ +[+-] *\d+\.\d kB +[+-]\d+ blocks  \S+\.py:\d+", printed, re.M)
    assert 1 <= len(growers) <= 3, printed
    assert re.search(r"^RssAnon per 10k lines +[+-]\d+\.\d{3} MB$", printed, re.M)
    assert re.search(r"^RESULT lines=\d+ .*rss_mb_per_10k_lines=", printed, re.M)


async def test_the_managers_windows_run_on_the_clock_it_is_built_with(make_settings, counter) -> None:
    # The bench's stream time: on the wall clock moderation's 120 s copypasta window spanned
    # 20-40 simulated minutes, and its windows filled for an hour at the machine's pace.
    clock = ManualClock()
    manager = await build_manager(make_settings(), backend=ScriptedBackend(default="hi!"), counter=counter, clock=clock)
    try:
        assert manager.clock is clock
        assert manager.moderator.clock is clock
    finally:
        await close_manager(manager)
