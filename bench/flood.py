"""Replay a recorded chat through the platform-neutral pipeline and measure it under a flood.

Every line goes through the chat session every platform adapter uses (``bot.session.ChatSession``):
``manager.hear`` (committed to a real SQLite file, then input moderation), the stream director and
the commands, then the reply scheduler; the session answers through the real ConversationManager
with the scripted backend and a 20-per-30 s send budget, into an outlet that records each send.
Start-up is the bot's own (``bot.app.build_manager``).

    python bench/flood.py --csv ../shared/data/live-chat-press-briefing.csv --speed 100000
    python bench/flood.py --csv chat.csv --speed 600 --clock-speed 30 --address-every 6

``--speed`` is how many times faster than recorded the chat is fed in (real time); a huge value
feeds every line at once and measures the most the pipeline can take. The bot's own clock
(cooldowns, staleness, the 30 s send window) runs ``--clock-speed`` times faster than real time,
so a flood of recorded chat meets Twitch's limits as it would live, in a few seconds. The last
line is
``RESULT ingest_msgs_per_s=… p99_decision_ms=… max_sends_per_30s=… stored=…/… embed_catch_up_s=… embedded=…``.

With ``COSTAR_MEMORY_EMBEDDINGS`` at its default (``local``) or ``--embeddings local``, lines that may carry a fact are
embedded by the bot's one embedding worker meanwhile (``--embeddings off`` to compare without);
``embed_catch_up_s`` is how long after the last line was committed the worker took to embed every
line it was offered (its backlog, ``COSTAR_MEMORY_EMBED_BACKLOG``, bounds what it keeps).
Decision latency is the time judging a stored line and ``submit`` take to queue or drop it;
ingest latency (arrival to committed) is printed next to it. One event loop does all of it, so
the ingest rate also pays for every decision and every reply made meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.inputs import require_inputs
from bot.app import build_manager, close_manager, freeze_startup_heap
from bot.session import ChatSession, SendLimits
from engine.backends.scripted import ScriptedBackend
from engine.base.clock import Clock, ScaledClock
from engine.events import ChatEvent, Reply
from engine.flow.ratelimit import most_in_any_window
from engine.flow.scheduler import Outcome, SchedulerConfig
from engine.prompting.tokens import ApproxTokenCounter
from engine.settings import load_settings
from memory.export import count_viewer_lines

PLATFORM = "bench"
CHANNEL = "flood"


@dataclass
class Measurements:
    ingest_ms: list[float] = field(default_factory=list)
    decision_ms: list[float] = field(default_factory=list)
    send_times: list[float] = field(default_factory=list)
    outcomes: Counter[Outcome] = field(default_factory=Counter)
    last_commit: float = 0.0
    embed_catch_up_s: float = 0.0
    embed_counts: Counter[str] = field(default_factory=Counter)


def load_events(csv_path: Path, address_every: int) -> list[tuple[float, ChatEvent]]:
    """(seconds after the first line, event) per row; every Nth line is rewritten to name Pip."""
    with csv_path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    start = datetime.fromisoformat(rows[0]["published_at"])
    events = []
    for index, row in enumerate(rows):
        addressed = address_every > 0 and index % address_every == 0
        text = f"Pip, {row['message']}" if addressed else row["message"]
        event = ChatEvent(
            platform=PLATFORM,
            channel_id=CHANNEL,
            author_id=row["author"],
            author_name=row["author"],
            text=text,
            message_id=f"csv-{index}",
            addresses_bot=addressed,
        )
        events.append(((datetime.fromisoformat(row["published_at"]) - start).total_seconds(), event))
    return events


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[int(share * 1000) - 1]


class RecordingOutlet:
    """The platform end of the session: records when each message would have been sent."""

    def __init__(self, clock: Clock, seen: Measurements) -> None:
        self.clock = clock
        self.seen = seen

    async def send(self, channel_id: str, text: str, *, reply_to: str | None, said: Reply | None) -> str | None:
        self.seen.send_times.append(self.clock.now())
        return f"sent-{len(self.seen.send_times)}"


async def take_line(session: ChatSession, event: ChatEvent, seen: Measurements) -> None:
    arrived = time.perf_counter()
    heard = (await session.take_line(event)).heard
    decided = time.perf_counter()
    assert heard is not None, "the bench's lines are all new"
    # Judging happens inside hear(), after the commit: the figures split there, as before.
    seen.ingest_ms.append((heard.stored_at - arrived) * 1000)
    seen.decision_ms.append((decided - heard.stored_at) * 1000)
    seen.last_commit = max(seen.last_commit, heard.stored_at)


async def replay(args: argparse.Namespace, db_dir: Path) -> tuple[Measurements, float, int, int]:
    memory = {"embeddings": args.embeddings} if args.embeddings else {}  # else COSTAR_MEMORY_EMBEDDINGS's
    settings = load_settings(None, core={"data_dir": db_dir}, memory=memory)
    backend = ScriptedBackend([f"answer {n}" for n in range(100_000)])
    manager = await build_manager(settings, backend=backend, counter=ApproxTokenCounter())
    freeze_startup_heap()  # as the bot does once its backend is up
    clock = ScaledClock(args.clock_speed)
    seen = Measurements()
    session = ChatSession(
        manager,
        RecordingOutlet(clock, seen),
        platform=PLATFORM,
        settings=settings,
        send_limits=SendLimits(args.limit),
        scheduler=SchedulerConfig(),
        clock=clock,
    )
    scheduler = session.scheduler
    assert scheduler is not None
    scheduler.on_outcome = lambda event, outcome: seen.outcomes.update((outcome,))
    # Whatever fails, memory is closed: its writer thread would otherwise keep the process alive.
    try:
        events = load_events(args.csv, args.address_every)
        await session.start()
        started = time.perf_counter()
        tasks = []
        for due, event in events:
            wait_s = due / args.speed - (time.perf_counter() - started)
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            tasks.append(asyncio.create_task(take_line(session, event, seen)))
        await asyncio.gather(*tasks)
        ingest_s = seen.last_commit - started
        if manager.embeddings is not None:  # the embedding worker's backlog after the flood
            await manager.embeddings.drain()
            seen.embed_catch_up_s = time.perf_counter() - seen.last_commit
            seen.embed_counts = manager.embeddings.counts
        await scheduler.join()
    finally:
        await session.close()
        await close_manager(manager)
    stored = count_viewer_lines(settings.db_path, PLATFORM)
    return seen, ingest_s, stored, len(events)


def report(seen: Measurements, ingest_s: float, stored: int, total: int) -> None:
    rate = total / ingest_s if ingest_s > 0 else float("inf")
    rows = [
        ("lines replayed", f"{total}"),
        ("lines stored", f"{stored}"),
        ("ingest wall time", f"{ingest_s:.3f} s"),
        ("ingested + committed", f"{rate:,.0f} msg/s"),
        (
            "ingest latency p50 / p99",
            f"{percentile(seen.ingest_ms, 0.5):.2f} / {percentile(seen.ingest_ms, 0.99):.2f} ms",
        ),
        (
            "decision latency p50 / p99",
            f"{percentile(seen.decision_ms, 0.5):.3f} / {percentile(seen.decision_ms, 0.99):.3f} ms",
        ),
        ("embedding catch-up after the flood", f"{seen.embed_catch_up_s:.1f} s"),
        (
            "lines embedded / skipped / dropped",
            f"{seen.embed_counts['embedded']} / {seen.embed_counts['skipped']}"
            f" / {seen.embed_counts['dropped_backlog'] + seen.embed_counts['dropped_error']}",
        ),
        ("replies sent", f"{len(seen.send_times)}"),
        ("most sends in any 30 s", f"{most_in_any_window(seen.send_times)}"),
    ] + [(f"outcome {outcome.value}", f"{count}") for outcome, count in sorted(seen.outcomes.items())]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(
        f"RESULT ingest_msgs_per_s={rate:.0f} p99_decision_ms={percentile(seen.decision_ms, 0.99):.3f}"
        f" max_sends_per_30s={most_in_any_window(seen.send_times)} stored={stored}/{total}"
        f" embed_catch_up_s={seen.embed_catch_up_s:.1f} embedded={seen.embed_counts['embedded']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, required=True, help="chat CSV with author, message, published_at")
    parser.add_argument("--speed", type=float, default=100_000, help="replay this many times faster than recorded")
    parser.add_argument(
        "--clock-speed", type=float, default=30, help="the bot's clock runs this many times faster than real time"
    )
    parser.add_argument("--limit", type=int, default=20, help="send budget per 30 s")
    parser.add_argument("--address-every", type=int, default=6, help="rewrite every Nth line to name the character")
    parser.add_argument("--db-dir", type=Path, help="where the SQLite file goes (default: a temporary folder)")
    parser.add_argument(
        "--embeddings",
        choices=("local", "openai", "off"),
        help="COSTAR_MEMORY_EMBEDDINGS for the run (default: the setting's, local unless set)",
    )
    args = parser.parse_args(argv)
    require_inputs(parser, {"--csv": args.csv})
    with tempfile.TemporaryDirectory() as scratch:
        seen, ingest_s, stored, total = asyncio.run(replay(args, args.db_dir or Path(scratch)))
    report(seen, ingest_s, stored, total)
    return 0 if stored == total else 1


if __name__ == "__main__":
    sys.exit(main())
