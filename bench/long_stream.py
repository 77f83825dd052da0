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

Reported: resident memory (RSS) per 10,000 lines after the warm-up (a least-squares slope over
samples taken after a garbage collection; target < 0.2 MB). The warm-up lasts until every bounded
per-line cache (``manager.cache_fill()``) and the scheduler's channel table are full, and at least ``--warmup`` of the lines; the
output says which, and says so when the caches never filled, the scheduler heap against its live
lines (target ≤ 2 per live line), and how many channels each per-channel table holds. The last
line is ``RESULT lines=… rss_mb_per_10k_lines=… max_heap_per_live=… …``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gc
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.inputs import require_inputs
from bot.app import build_manager, close_manager, freeze_startup_heap
from engine.backends.base import GenerationRequest, TextStream
from engine.backends.scripted import ScriptedBackend
from engine.events import ChatEvent
from engine.flow.clock import ManualClock
from engine.flow.ratelimit import SendBudget, SendReservation
from engine.flow.recent import RecentlyUsed
from engine.flow.scheduler import Outcome, ReplyScheduler, SchedulerConfig
from engine.manager import ConversationManager, HeardLine
from engine.prompting.tokens import ApproxTokenCounter
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


@dataclass
class Samples:
    rss: list[tuple[int, float]] = field(default_factory=list)  # (lines so far, MB)
    most_heap_per_live: float = 0.0
    most_heap_entries: int = 0
    most_live: int = 0
    most_channel_state: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[Outcome] = field(default_factory=Counter)
    sent: int = 0
    caches_full_at: int | None = None  # lines when the per-line caches and channel tables first were full
    cache_fill: dict[str, tuple[int, int]] = field(default_factory=dict)


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


def sample(lines: int, manager: ConversationManager, scheduler: ReplyScheduler, seen: Samples) -> None:
    footprint = scheduler.footprint()
    seen.most_heap_per_live = max(seen.most_heap_per_live, footprint.most_heap_per_live)
    seen.most_heap_entries = max(seen.most_heap_entries, footprint.heap_entries)
    seen.most_live = max(seen.most_live, footprint.live)
    state = {**manager.channel_state(), "scheduler_channels": footprint.channels}
    state["scheduler_text_windows"] = footprint.text_windows
    for table, count in state.items():
        seen.most_channel_state[table] = max(seen.most_channel_state[table], count)
    seen.cache_fill = manager.cache_fill()
    channels_full = footprint.channels >= scheduler.config.channels_kept
    if seen.caches_full_at is None and channels_full and all(size >= cap for size, cap in seen.cache_fill.values()):
        seen.caches_full_at = lines
    gc.collect()
    seen.rss.append((lines, rss_mb()))


async def stream(args: argparse.Namespace, db_dir: Path) -> tuple[Samples, int, int, float, float]:
    settings = load_settings(None, core={"data_dir": db_dir, "channels_kept": args.channels_kept})
    manager = await build_manager(
        settings, backend=ForgetfulBackend(default="Great point, chat!"), counter=ApproxTokenCounter()
    )
    freeze_startup_heap()
    clock = ManualClock()
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
    await scheduler.start()
    started, lines = time.perf_counter(), 0
    for index, due in enumerate(arrival_times(args)):
        await clock.advance(max(0.0, due - clock.now()))
        scheduler.submit(await manager.hear(event_for(index, chat, args)))
        lines = index + 1
        if lines % SAMPLE_EVERY == 0:
            sample(lines, manager, scheduler, seen)
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
        ("scheduler heap", f"at most {seen.most_heap_entries} entries; {seen.most_heap_per_live:.2f} per live line"),
        ("queued lines at most", f"{seen.most_live}"),
    ] + [(f"most held: {table}", f"{count}") for table, count in sorted(seen.most_channel_state.items())]
    rows += [(f"outcome {outcome.value}", f"{count}") for outcome, count in sorted(seen.outcomes.items())]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    most_state = max(seen.most_channel_state.values(), default=0)
    print(
        f"RESULT lines={lines} avg_lines_per_s={lines / max(stream_s, 1):.1f} burst_lines_per_s={peak}"
        f" rss_mb_per_10k_lines={rss_slope:.3f} warmup_lines={warmup} max_heap_per_live={seen.most_heap_per_live:.2f}"
        f" max_heap_entries={seen.most_heap_entries} max_channel_state={most_state}"
        f" channels_kept={args.channels_kept} stored={stored}/{lines}"
    )


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
    parser.add_argument("--db-dir", type=Path, help="where the SQLite file goes (default: a temporary folder)")
    args = parser.parse_args(argv)
    require_inputs(parser, {"chat": args.chat})
    with tempfile.TemporaryDirectory() as scratch:
        seen, lines, stored, wall_s, stream_s = asyncio.run(stream(args, args.db_dir or Path(scratch)))
    report(seen, lines, stored, wall_s, stream_s, args)
    return 0 if stored == lines else 1


if __name__ == "__main__":
    sys.exit(main())
