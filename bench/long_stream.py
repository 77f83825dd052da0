"""A 30-minute stream on a simulated clock: does memory stay flat and the queues bounded?

Lines from a recorded chat (CSV with ``author`` and ``message``, reused in a loop) arrive at a
big stream's pace — a steady ``--base-rate`` lines/s with a burst of ``--burst-rate`` lines/s for
``--burst-s`` seconds every minute (defaults: about 13 lines/s on average, bursts of 120/s) —
spread over many channels: most in one Twitch channel, the rest in ``--threads`` Discord
threads, plus a new direct-message channel every ``--dm-every`` lines, so the number of
channels ever seen grows past ``--channels-kept``. Every line takes the one way in
(``manager.hear``, then ``ReplyScheduler.submit``); every ``--address-every``th line names the
character and is answered through the real manager (scripted backend, a real SQLite file,
20 sends per 30 s per channel).

The clock is simulated: it jumps to each line's arrival time, so 30 minutes of chat run as fast
as the machine can take them while cooldowns, staleness and send windows see stream time.

    python bench/long_stream.py ../shared/data/live-chat-press-briefing.csv
    python bench/long_stream.py chat.csv --minutes 30 --channels-kept 256

The embedding worker is real, not simulated: at each simulated minute the bench waits for it to
embed that minute's lines, as the real minute would give it time to (and says how long the
longest minute took it; over 60 s a real stream would outpace it).

Reported: resident memory (RSS) per 10,000 lines after the warm-up (a least-squares slope over
samples taken after a garbage collection; target < 0.2 MB). The warm-up lasts until every bounded
per-line cache (``manager.cache_fill()``) and every per-channel table (manager, moderation,
scheduler) are full, and at least ``--warmup`` of the lines; the output says which, and says so
when the caches never filled, the scheduler heap against its live
lines (target ≤ 2 per live line), and how many channels each per-channel table holds. The last
line is ``RESULT lines=… rss_mb_per_10k_lines=… max_heap_per_live=… …``.

Where growth lives: the same slope is printed for each kind of resident memory (RssAnon, RssFile,
RssShmem), for what glibc's allocator holds (in use, and freed but kept) and for Python's live
blocks. ``--tracemalloc FROM TO`` traces Python's allocations from the first line and prints the
allocation sites (by traceback) that grew most between those simulated minutes:

    python bench/long_stream.py chat.csv --minutes 120 --tracemalloc 60 120
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import ctypes
import ctypes.util
import gc
import os
import random
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.inputs import require_inputs
from bot.app import build_manager, close_manager, freeze_startup_heap
from engine.backends.base import GenerationRequest, TextStream
from engine.backends.scripted import ScriptedBackend
from engine.base.clock import ManualClock
from engine.base.recent import RecentlyUsed
from engine.events import ChatEvent
from engine.flow.ratelimit import SendBudget, SendReservation
from engine.flow.scheduler import Outcome, ReplyScheduler, SchedulerConfig
from engine.manager import ConversationManager, HeardLine
from engine.prompting.tokens import ApproxTokenCounter
from engine.recall.embed_worker import EmbedWorker
from engine.settings import load_settings
from memory.export import count_viewer_lines

SAMPLE_EVERY = 1000


class ForgetfulBackend(ScriptedBackend):
    """The scripted backend without its record of every request (tests read it; a long run must not keep it)."""

    def stream(self, request: GenerationRequest) -> TextStream:
        answer = super().stream(request)
        self.requests.clear()
        return answer


# lines between memory and queue samples
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * _PAGE / 1e6


def rss_parts_mb() -> dict[str, float]:
    """RSS by kind: heap and other private memory (RssAnon), mapped files (RssFile: code, and any
    SQLite file SQLite maps), shared memory (RssShmem: SQLite's WAL index, the ``-shm`` file)."""
    parts = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for row in status:
            name, _, value = row.partition(":")
            if name in ("RssAnon", "RssFile", "RssShmem"):
                parts[name] = int(value.split()[0]) / 1e3  # kB
    return parts


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _glibc_mallinfo() -> Callable[[], _MallInfo2] | None:
    libc_name = ctypes.util.find_library("c")
    mallinfo2 = getattr(ctypes.CDLL(libc_name), "mallinfo2", None) if libc_name else None
    if mallinfo2 is not None:
        mallinfo2.restype = _MallInfo2
    return mallinfo2


_MALLINFO = _glibc_mallinfo()  # glibc 2.33+; elsewhere the allocator figures are left out


def _sqlite_memory_used() -> Callable[[], int] | None:
    # Python's sqlite3 does not expose sqlite3_memory_used(); the library its extension links
    # against does (dlsym on the extension's handle searches its dependencies too).
    import _sqlite3

    memory_used = getattr(ctypes.CDLL(_sqlite3.__file__), "sqlite3_memory_used", None)
    if memory_used is not None:
        memory_used.restype = ctypes.c_int64
    return memory_used


_SQLITE_MEMORY_USED = _sqlite_memory_used()


def allocator_mb() -> dict[str, float]:
    """What the C allocator holds, summed over its arenas: in use by the program (Python's arenas
    and objects, SQLite's page cache), and freed but kept (fragmentation); plus Python's live blocks."""
    parts = {"python_blocks_k": sys.getallocatedblocks() / 1e3}
    if _MALLINFO is not None:
        info = _MALLINFO()
        parts["malloc_in_use"] = (info.uordblks + info.hblkhd) / 1e6
        parts["malloc_free_held"] = info.fordblks / 1e6
    if _SQLITE_MEMORY_USED is not None:
        parts["sqlite_in_use"] = _SQLITE_MEMORY_USED() / 1e6  # a part of malloc_in_use: page cache, statements
    return parts


def traced_growers(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, top: int) -> list[str]:
    """The allocation sites whose live bytes grew most between two snapshots, by traceback."""
    rows = []
    for diff in after.compare_to(before, "traceback")[:top]:
        frames = [f"{Path(frame.filename).name}:{frame.lineno}" for frame in reversed(diff.traceback)]
        rows.append(f"{diff.size_diff / 1e3:+9.1f} kB {diff.count_diff:+7d} blocks  " + " <- ".join(frames[:6]))
    return rows


@dataclass
class Samples:
    rss: list[tuple[int, float]] = field(default_factory=list)  # (lines so far, MB)
    rss_parts: list[tuple[int, dict[str, float]]] = field(default_factory=list)  # (lines so far, MB by kind)
    snapshots: list[tuple[int, tracemalloc.Snapshot]] = field(default_factory=list)  # (lines so far, snapshot)
    most_heap_per_live: float = 0.0
    most_heap_entries: int = 0
    most_live: int = 0
    most_channel_state: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[Outcome] = field(default_factory=Counter)
    sent: int = 0
    caches_full_at: int | None = None  # lines when the per-line caches and channel tables first were full
    cache_fill: dict[str, tuple[int, int]] = field(default_factory=dict)
    embed_waiting: list[tuple[int, int]] = field(default_factory=list)  # (lines so far, lines waiting to be embedded)
    embed_counts: dict[str, int] = field(default_factory=dict)  # the embedding worker's counts at the end
    embed_busy_s: list[float] = field(default_factory=list)  # real seconds the worker took for each minute's lines


def arrival_times(args: argparse.Namespace) -> Iterator[float]:
    """Seconds into the stream of each line: steady chat, and a burst at the top of every minute."""
    rng = random.Random(13)
    now, end = 0.0, args.minutes * 60.0
    while now < end:
        rate = args.burst_rate if now % 60.0 < args.burst_s else args.base_rate
        now += rng.expovariate(rate)
        yield now


def load_chat(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return [(row["author"], row["message"]) for row in csv.DictReader(handle) if row.get("message")]


def event_for(index: int, chat: list[tuple[str, str]], args: argparse.Namespace) -> ChatEvent:
    author, message = chat[index % len(chat)]
    if index % args.dm_every == 0:
        platform, channel = "discord", f"dm-{index}"  # a direct message: a channel seen once
    elif index % 5 == 0:
        platform, channel = "discord", f"thread-{index % args.threads}"
    else:
        platform, channel = "twitch", "stream"
    addressed = index % args.address_every == 0
    loop_number = index // len(chat)  # the chat is reused: keep its lines distinct per pass
    return ChatEvent(
        platform=platform,
        channel_id=channel,
        author_id=f"{author}#{loop_number % 3}",
        author_name=author,
        text=f"Pip, {message}" if addressed else message,
        message_id=f"line-{index}",
        addresses_bot=addressed,
    )


def filled(seen: Samples, channels_kept: int) -> bool:
    """Every bounded per-line cache is full, and every per-channel table has held ``channels_kept``
    channels: not only the scheduler's, since the manager's and moderation's tables fill later (only
    addressed channels get a turn) and their filling looks like a slow leak."""
    tables_full = all(count >= channels_kept for count in seen.most_channel_state.values())
    return tables_full and all(size >= capacity for size, capacity in seen.cache_fill.values())


def sample(lines: int, manager: ConversationManager, scheduler: ReplyScheduler, seen: Samples) -> None:
    footprint = scheduler.footprint()
    seen.most_heap_per_live = max(seen.most_heap_per_live, footprint.most_heap_per_live)
    seen.most_heap_entries = max(seen.most_heap_entries, footprint.heap_entries)
    seen.most_live = max(seen.most_live, footprint.live)
    state = {**manager.channel_state(), "scheduler_channels": footprint.channels}
    for table, count in state.items():
        seen.most_channel_state[table] = max(seen.most_channel_state[table], count)
    seen.cache_fill = manager.cache_fill()
    if manager.embeddings is not None:
        # Its backlog fills whenever the bench feeds lines faster than the embedder takes them.
        seen.embed_waiting.append((lines, manager.embeddings.waiting))
        seen.embed_counts = dict(manager.embeddings.counts)
    if seen.caches_full_at is None and filled(seen, scheduler.config.channels_kept):
        seen.caches_full_at = lines
    gc.collect()
    seen.rss.append((lines, rss_mb()))
    seen.rss_parts.append((lines, rss_parts_mb() | allocator_mb()))


async def embedder_catches_up(worker: EmbedWorker) -> float:
    """Let the embedding worker finish the minute's lines; the real seconds it took.

    The simulated clock runs far faster than the worker's real time, so without this its backlog
    would fill with lines a real stream's minute gives it time to embed, and its bound, not the
    steady state, would be measured. A minute that took it more than 60 real seconds is one a
    real stream could not keep up with: the output says the longest.
    """
    started = time.perf_counter()
    await worker.drain()
    return time.perf_counter() - started


async def stream(args: argparse.Namespace, db_dir: Path) -> tuple[Samples, int, int, float, float]:
    settings = load_settings(None, core={"data_dir": db_dir, "channels_kept": args.channels_kept})
    # One simulated clock for the manager too: on the wall clock moderation's 120 s copypasta
    # window spanned 20-40 stream minutes, so its windows (up to 200 lines a channel) filled for
    # an hour, at a pace set by the machine's speed.
    clock = ManualClock()
    manager = await build_manager(
        settings, backend=ForgetfulBackend(default="Great point, chat!"), counter=ApproxTokenCounter(), clock=clock
    )
    freeze_startup_heap()
    budgets: RecentlyUsed[str, SendBudget] = RecentlyUsed(
        args.channels_kept, evictable=lambda budget: not budget.in_window()
    )
    seen = Samples()

    async def answer(heard: HeardLine, reservation: SendReservation | None) -> bool:
        reply = await manager.reply(heard)
        if reply is None:
            return False
        await manager.link_sent(reply, f"sent-{heard.event.message_id}")
        if reservation is not None:
            reservation.sent()
        seen.sent += 1
        return True

    scheduler = ReplyScheduler(
        answer,
        SchedulerConfig(max_in_flight=4, channels_kept=args.channels_kept),
        clock=clock,
        budget_for=lambda event: budgets.setdefault(event.channel_key, lambda: SendBudget(20, clock=clock)),
        on_outcome=lambda event, outcome: seen.outcomes.update((outcome,)),
    )
    chat = load_chat(args.chat)
    snapshot_at = sorted(minutes * 60.0 for minutes in args.tracemalloc or ())
    if snapshot_at:
        # From the first line on: an entry a full cache evicts was then traced too, so turnover
        # inside a bounded cache cancels out in the diff instead of looking like growth.
        tracemalloc.start(args.tracemalloc_frames)
    await scheduler.start()
    started, lines, minute = time.perf_counter(), 0, 0
    for index, due in enumerate(arrival_times(args)):
        if manager.embeddings is not None and int(due // 60) > minute:
            minute = int(due // 60)
            seen.embed_busy_s.append(await embedder_catches_up(manager.embeddings))
        await clock.advance(max(0.0, due - clock.now()))
        scheduler.submit(await manager.hear(event_for(index, chat, args)))
        lines = index + 1
        if lines % SAMPLE_EVERY == 0:
            sample(lines, manager, scheduler, seen)
        if snapshot_at and clock.now() >= snapshot_at[0]:
            snapshot_at.pop(0)
            gc.collect()
            seen.snapshots.append((lines, tracemalloc.take_snapshot()))
    await clock.advance(120)  # let the queues drain and go stale
    await scheduler.join()
    sample(lines, manager, scheduler, seen)
    wall_s = time.perf_counter() - started
    await scheduler.close()
    await close_manager(manager)
    stored = count_viewer_lines(settings.db_path, "twitch") + count_viewer_lines(settings.db_path, "discord")
    return seen, lines, stored, wall_s, args.minutes * 60.0


def slope_per_10k(points: list[tuple[int, float]]) -> float:
    """Least-squares MB per 10,000 lines."""
    if len(points) < 2:
        return 0.0
    xs, ys = [x for x, _ in points], [y for _, y in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    return 0.0 if spread == 0 else sum((x - mean_x) * (y - mean_y) for x, y in points) / spread * 10_000


def warmup_lines(seen: Samples, lines: int, args: argparse.Namespace) -> tuple[int, str]:
    """Where RSS starts to count: once the bounded caches are full (their filling is not a leak)."""
    share = round(lines * args.warmup)
    if seen.caches_full_at is None:
        return share, f"{share} lines ({args.warmup:.0%}); the caches never filled, so growth includes their filling"
    if seen.caches_full_at >= share:
        return (
            seen.caches_full_at,
            f"{seen.caches_full_at} lines (until every per-line cache and the channel tables were full)",
        )
    return share, f"{share} lines ({args.warmup:.0%}; every bounded cache was full at {seen.caches_full_at})"


def embed_backlog_line(seen: Samples, warmup: int) -> str:
    """Lines waiting to be embedded: at the warm-up, at most, at the end; and the worker's counts."""
    if not seen.embed_waiting:
        return "- (recall by meaning off)"
    at_warmup = next((waiting for at, waiting in seen.embed_waiting if at >= warmup), 0)
    most = max(waiting for _, waiting in seen.embed_waiting)
    counts = ", ".join(f"{name} {count}" for name, count in sorted(seen.embed_counts.items()))
    busy = f"; a minute's lines took it at most {max(seen.embed_busy_s):.1f} s of 60" if seen.embed_busy_s else ""
    return f"{at_warmup} lines at the warm-up, at most {most}, {seen.embed_waiting[-1][1]} at the end ({counts}){busy}"


def report(seen: Samples, lines: int, stored: int, wall_s: float, stream_s: float, args: argparse.Namespace) -> None:
    warmup, warmup_why = warmup_lines(seen, lines, args)
    after_warmup = [(at, mb) for at, mb in seen.rss if at >= warmup]
    rss_slope = slope_per_10k(after_warmup)
    peak = max(1, round(args.burst_rate))
    rows = [
        ("lines", f"{lines} over {stream_s / 60:.1f} simulated minutes ({lines / max(stream_s, 1):.1f}/s average)"),
        ("bursts", f"{args.burst_rate:.0f} lines/s for {args.burst_s:.0f} s every minute"),
        ("stored", f"{stored}/{lines}"),
        ("replies sent", f"{seen.sent}"),
        ("wall time", f"{wall_s:.1f} s"),
        ("warm-up", warmup_why),
        ("caches at the end", ", ".join(f"{name} {size}/{cap}" for name, (size, cap) in seen.cache_fill.items())),
        ("RSS after warm-up", f"{after_warmup[0][1]:.1f} → {after_warmup[-1][1]:.1f} MB" if after_warmup else "-"),
        ("RSS per 10k lines", f"{rss_slope:+.3f} MB"),
        # Filling that is still settling shows as a steeper first half; a leak keeps its slope.
        ("  in the last half", f"{slope_per_10k(after_warmup[len(after_warmup) // 2 :]):+.3f} MB"),
        ("scheduler heap", f"at most {seen.most_heap_entries} entries; {seen.most_heap_per_live:.2f} per live line"),
        ("queued lines at most", f"{seen.most_live}"),
        ("embedding backlog", embed_backlog_line(seen, warmup)),
    ] + [(f"most held: {table}", f"{count}") for table, count in sorted(seen.most_channel_state.items())]
    rows += [(f"outcome {outcome.value}", f"{count}") for outcome, count in sorted(seen.outcomes.items())]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    parts = sorted({kind for _, by_kind in seen.rss_parts for kind in by_kind})
    for kind in parts:
        points = [(at, by_kind[kind]) for at, by_kind in seen.rss_parts if at >= warmup and kind in by_kind]
        unit = "thousand" if kind.endswith("_k") else "MB"
        print(f"{kind + ' per 10k lines':<{width}}  {slope_per_10k(points):+.3f} {unit}")
    report_traced_growth(seen, args)
    most_state = max(seen.most_channel_state.values(), default=0)
    print(
        f"RESULT lines={lines} avg_lines_per_s={lines / max(stream_s, 1):.1f} burst_lines_per_s={peak}"
        f" rss_mb_per_10k_lines={rss_slope:.3f} warmup_lines={warmup} max_heap_per_live={seen.most_heap_per_live:.2f}"
        f" max_heap_entries={seen.most_heap_entries} max_channel_state={most_state}"
        f" channels_kept={args.channels_kept} stored={stored}/{lines}"
    )


def report_traced_growth(seen: Samples, args: argparse.Namespace) -> None:
    """tracemalloc's top growers between the first and the last snapshot (RSS is inflated by tracing)."""
    if len(seen.snapshots) < 2:
        if args.tracemalloc:
            print("tracemalloc: the stream ended before the second snapshot; no diff")
        return
    (first_at, first), (last_at, last) = seen.snapshots[0], seen.snapshots[-1]
    traced = sum(stat.size for stat in last.statistics("filename")) - sum(
        stat.size for stat in first.statistics("filename")
    )
    print(
        f"tracemalloc: traced Python memory {traced / 1e6:+.3f} MB from line {first_at} to {last_at}"
        f" ({traced / 1e6 / max(1, last_at - first_at) * 10_000:+.3f} MB per 10k lines); top growers:"
    )
    for row in traced_growers(first, last, args.tracemalloc_top):
        print("  " + row)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chat", type=Path, help="chat CSV with author and message columns")
    parser.add_argument("--minutes", type=float, default=30, help="simulated stream length")
    parser.add_argument("--base-rate", type=float, default=8, help="lines per second between bursts")
    parser.add_argument("--burst-rate", type=float, default=120, help="lines per second during a burst")
    parser.add_argument("--burst-s", type=float, default=3, help="seconds of burst at the top of every minute")
    parser.add_argument("--threads", type=int, default=300, help="Discord threads the side chatter spreads over")
    parser.add_argument("--dm-every", type=int, default=40, help="every Nth line is a DM in a new channel")
    parser.add_argument("--address-every", type=int, default=6, help="every Nth line names the character")
    parser.add_argument("--channels-kept", type=int, default=256, help="COSTAR_CHANNELS_KEPT for the run")
    parser.add_argument(
        "--warmup",
        type=float,
        default=0.25,
        help="least share of the lines before RSS is measured (or until caches fill)",
    )
    parser.add_argument(
        "--tracemalloc",
        type=float,
        nargs=2,
        metavar=("FROM_MIN", "TO_MIN"),
        help="trace Python allocations and print the top growing sites between these simulated minutes"
        " (slows the run, and RSS then includes tracemalloc's own memory)",
    )
    parser.add_argument("--tracemalloc-frames", type=int, default=8, help="frames kept per traced allocation")
    parser.add_argument("--tracemalloc-top", type=int, default=15, help="growing sites printed")
    parser.add_argument("--db-dir", type=Path, help="where the SQLite file goes (default: a temporary folder)")
    args = parser.parse_args(argv)
    require_inputs(parser, {"chat": args.chat})
    with tempfile.TemporaryDirectory() as scratch:
        seen, lines, stored, wall_s, stream_s = asyncio.run(stream(args, args.db_dir or Path(scratch)))
    report(seen, lines, stored, wall_s, stream_s, args)
    return 0 if stored == lines else 1


if __name__ == "__main__":
    sys.exit(main())
