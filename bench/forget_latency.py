"""Forget latency at scale: how long ``!forgetme`` holds memory's write lock on a big database.

Works on a copy of a database built by ``bench/recall_latency.py`` (a million viewer lines by
default), so the source stays intact for the next run. It forgets ``--forgets`` viewers one at a
time through ``SqliteMemoryStore.forget_user`` — the busiest viewer, then viewers drawn at random — while
a writer keeps recording chat lines through the group commit, and times both: how long each forget
took (the write lock is held that long) and how long a chat line waited to be stored meanwhile.

    python bench/recall_latency.py --db /tmp/recall-1m.sqlite3 --queries 20   # build once
    python bench/forget_latency.py /tmp/recall-1m.sqlite3
    python bench/forget_latency.py /tmp/recall-1m.sqlite3 --forgets 10

The last line is ``RESULT forget_p50_ms=… forget_max_ms=… ingest_p99_ms=… lines=…``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.inputs import require_inputs  # noqa: E402
from engine.events import ChatEvent  # noqa: E402
from memory import SqliteMemoryStore  # noqa: E402
from memory.export import viewer_line_counts  # noqa: E402

PLATFORM = "twitch"
INGEST_INTERVAL_S = 0.005  # about 200 chat lines a second arrive while viewers are forgotten


def percentile(values: list[float], share: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=1000, method="inclusive")[int(share * 1000) - 1]


def chosen_viewers(db: Path, forgets: int, seed: int) -> list[tuple[str, int]]:
    """The busiest viewer first, then others at random: (platform user id, their line count)."""
    counts = viewer_line_counts(db, PLATFORM)
    if not counts:
        raise SystemExit(f"{db}: no viewers on {PLATFORM}; build it with bench/recall_latency.py")
    busiest = max(counts, key=lambda pair: pair[1])
    others = [pair for pair in counts if pair != busiest]
    return [busiest, *random.Random(seed).sample(others, min(forgets - 1, len(others)))]


async def ingest(memory: SqliteMemoryStore, stop: asyncio.Event, waits: list[float]) -> None:
    """Chat keeps arriving: one line every INGEST_INTERVAL_S, each timed until it is committed."""
    count = 0
    pending: set[asyncio.Task[None]] = set()

    async def one(event: ChatEvent) -> None:
        began = time.perf_counter()
        await memory.record_message(event)
        waits.append((time.perf_counter() - began) * 1000)

    while not stop.is_set():
        count += 1
        event = ChatEvent(
            platform=PLATFORM,
            channel_id="cozyvariety",
            author_id=f"bench-chatter-{count % 50}",
            author_name=f"Chatter{count % 50}",
            text=f"still here, line {count}",
            message_id=f"forget-bench-{count}",
        )
        task = asyncio.create_task(one(event))
        pending.add(task)
        task.add_done_callback(pending.discard)
        await asyncio.sleep(INGEST_INTERVAL_S)
    await asyncio.gather(*pending)


async def run(db: Path, viewers: list[tuple[str, int]]) -> tuple[list[float], list[float], int]:
    memory = await SqliteMemoryStore.open(db)  # applies any newer migration (and its indexes) first
    forget_ms: list[float] = []
    waits: list[float] = []
    try:
        stop = asyncio.Event()
        writer = asyncio.create_task(ingest(memory, stop, waits))
        await asyncio.sleep(0.5)
        for user_id, lines in viewers:
            began = time.perf_counter()
            result = await memory.forget_user(PLATFORM, user_id)
            forget_ms.append((time.perf_counter() - began) * 1000)
            print(f"  forgot {user_id!r}: {lines:,} lines ({result.messages:,} rows) in {forget_ms[-1]:,.0f} ms")
            await asyncio.sleep(0.2)
        stop.set()
        await writer
        stored = await memory.count_messages()
    finally:
        await memory.close()
    return forget_ms, waits, stored


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("db", type=Path, help="database built by bench/recall_latency.py (copied, never changed)")
    parser.add_argument("--forgets", type=int, default=10, help="viewers forgotten, the busiest first")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    require_inputs(parser, {"db (build it with bench/recall_latency.py --db)": args.db})
    if args.forgets < 1:
        parser.error("--forgets must be positive")
    with tempfile.TemporaryDirectory(prefix="costar-forget-latency-") as scratch:
        copy = Path(scratch) / "costar.sqlite3"
        shutil.copyfile(args.db, copy)
        if Path(f"{args.db}-wal").exists():  # a leftover log holds committed lines too
            shutil.copyfile(f"{args.db}-wal", f"{copy}-wal")
        viewers = chosen_viewers(copy, args.forgets, args.seed)
        began = time.perf_counter()
        forget_ms, waits, stored = asyncio.run(run(copy, viewers))
        print(f"whole run {time.perf_counter() - began:.1f} s (opening includes any new migration)")
    print(f"forgets: {len(forget_ms)}, p50 {percentile(forget_ms, 0.5):,.1f} ms, max {max(forget_ms):,.1f} ms")
    print(f"chat lines stored meanwhile: {len(waits):,}, wait p50 {percentile(waits, 0.5):.1f} ms,"
          f" p99 {percentile(waits, 0.99):.1f} ms, max {max(waits):.1f} ms")  # fmt: skip
    print(
        f"RESULT forget_p50_ms={percentile(forget_ms, 0.5):.1f} forget_max_ms={max(forget_ms):.1f}"
        f" ingest_p99_ms={percentile(waits, 0.99):.1f} lines={stored}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
