"""Recall latency at scale: how long memory's full-text recall takes on a million stored lines.

Builds a memory database (or reuses ``--db``) holding ``--lines`` viewer lines: the press-briefing
chat's texts, cycled, under varied authors (the CSV's authors with a per-cycle suffix) across a few
channels, with ``sent_at`` spread over 30 days. Lines go in through ``MemoryStore.record_message``,
``--batch`` at a time concurrently, which memory commits as one transaction per batch (its group
commit, the path a chat flood takes; the FTS5 index is filled by memory's own trigger).

Then it times, one at a time, ``--queries`` calls of exactly what ``engine/recall/recaller.py``
does per reply: ``memory.recall(platform, channel, author, query_terms(line), before_id=…,
limit=recall_lines)`` with terms from real chat lines turned into questions to Pip, and a
``before_id`` just outside a 300-line history window; then the whole ``Recaller.block_for`` path
(notes for the speaker, both FTS queries, ranking, the token budget; SmolLM2's tokenizer when the
model cache has it). Every queried author gets a few notes first, so ``notes_for`` has work to do.

    python bench/recall_latency.py                                # 1,000,000 lines in a temp folder
    python bench/recall_latency.py --lines 100000 --queries 200
    python bench/recall_latency.py --db /tmp/recall-1m.sqlite3    # build once, then reuse

The last line is ``RESULT recall_p50_ms=… recall_p99_ms=… lines=…``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.inputs import require_inputs  # noqa: E402
from engine.events import ChatEvent  # noqa: E402
from engine.prompting.tokens import ApproxTokenCounter, TokenCounter, TokenizerCounter  # noqa: E402
from engine.recall.recaller import Recaller  # noqa: E402
from engine.recall.terms import query_terms  # noqa: E402
from engine.settings import CoreSettings, MemorySettings  # noqa: E402
from memory import MemoryStore, RecalledLine, StoredMessage  # noqa: E402
from personas.card import PersonaCard  # noqa: E402
from personas.registry import BUILTIN_CARDS_DIR, PersonaRegistry  # noqa: E402

DEFAULT_CSV = REPO.parent / "shared" / "data" / "live-chat-press-briefing.csv"
PLATFORM = "twitch"
CHANNELS = ("cozyvariety", "speedrunners", "latenightchat", "retrocorner")
HISTORY_WINDOW = 300  # COSTAR_PROMPT_HISTORY_LINES: recall looks only before the window
SPAN = timedelta(days=30)


def read_chat(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [(row.get("author") or "", row.get("message") or "") for row in csv.DictReader(handle)]
    chat = [(author.strip() or "viewer", " ".join(text.split())) for author, text in rows if text.strip()]
    if not chat:
        raise SystemExit(f"{path}: no rows with author and message")
    return chat


def line_event(chat: Sequence[tuple[str, str]], index: int, total: int, start: datetime) -> ChatEvent:
    """Line ``index`` of the synthetic chat: CSV text, its author renamed per cycle, one of the channels."""
    cycle, row = divmod(index, len(chat))
    author, text = chat[row]
    name = f"{author}_{cycle % 7}" if cycle % 7 else author  # ~7x the CSV's authors, as regulars return
    return ChatEvent(
        platform=PLATFORM,
        channel_id=CHANNELS[(row + cycle) % len(CHANNELS)],
        author_id=name.casefold(),
        author_name=name,
        text=text,
        message_id=f"m{index}",
        sent_at=start + SPAN * (index / max(1, total)),
    )


async def build(memory: MemoryStore, chat: Sequence[tuple[str, str]], have: int, lines: int, batch: int) -> None:
    start = datetime.now(UTC) - SPAN
    report_every = max(batch, lines // 10)
    began = time.perf_counter()
    for first in range(have, lines, batch):
        events = [line_event(chat, index, lines, start) for index in range(first, min(first + batch, lines))]
        await asyncio.gather(*(memory.record_message(event) for event in events))
        done = first + len(events)
        if done % report_every < batch or done == lines:
            elapsed = time.perf_counter() - began
            print(f"  {done:>10,} lines  {elapsed:7.1f} s  {(done - have) / elapsed:9,.0f} lines/s", flush=True)


def percentile(values: Sequence[float], share: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=1000, method="inclusive")[int(share * 1000) - 1]


def token_counter() -> tuple[TokenCounter, str]:
    tokenizer = CoreSettings().cache_dir / "models" / "smollm2" / "tokenizer.json"
    if tokenizer.is_file():
        return TokenizerCounter(tokenizer), "SmolLM2 tokenizer"
    return ApproxTokenCounter(), "ApproxTokenCounter"


def pip_card() -> PersonaCard:
    card = PersonaRegistry.from_dirs([BUILTIN_CARDS_DIR]).get("pip")
    if card is None:
        raise SystemExit("the built-in pip card is missing")
    return card


def shown_to_model(line: StoredMessage | RecalledLine, persona: PersonaCard) -> bool:
    return True  # the manager's content filter is not what is measured here


async def measure(
    memory: MemoryStore, chat: Sequence[tuple[str, str]], lines: int, queries: int, seed: int
) -> dict[str, list[float]]:
    rng = random.Random(seed)
    persona = pip_card()
    settings = MemorySettings()
    counter, counted_with = token_counter()
    recaller = Recaller(memory, settings, counter.count)
    top = await memory.count_messages()
    before_id = max(1, top - HISTORY_WINDOW)
    asked: list[ChatEvent] = []
    while len(asked) < queries:
        index = rng.randrange(min(lines, top))
        source = line_event(chat, index, lines, datetime.now(UTC))
        text = f"pip, {chat[rng.randrange(len(chat))][1]}"  # another chat line, asked of Pip by this author
        if not query_terms(text, ignore=(persona.name, persona.display_name)):
            continue
        asked.append(
            ChatEvent(
                platform=PLATFORM,
                channel_id=source.channel_id,
                author_id=source.author_id,
                author_name=source.author_name,
                text=text,
                message_id=f"q{len(asked)}",
                addresses_bot=True,
            )
        )
    for event in asked[: queries // 2]:  # half of the askers have notes, as regulars do
        for note in ("I live in Glasgow", "my cat is called Miso", "I love speedruns"):
            await memory.add_note(event.platform, event.author_id, note, kind="disclosure", keep_at_most=20)
    timings: dict[str, list[float]] = {"recall": [], "block_for": [], "found": []}
    for event in asked:
        terms = query_terms(event.text, ignore=(persona.name, persona.display_name))
        began = time.perf_counter()
        found = await memory.recall(
            event.platform,
            event.channel_id,
            event.author_id,
            terms,
            before_id=before_id,
            limit=settings.recall_lines,
        )
        timings["recall"].append((time.perf_counter() - began) * 1000)
        timings["found"].append(len(found))
    for event in asked:
        began = time.perf_counter()
        await recaller.block_for(event, persona, before_id=before_id, shown=shown_to_model)
        timings["block_for"].append((time.perf_counter() - began) * 1000)
    print(f"tokens counted with {counted_with}; recall_lines={settings.recall_lines}, before_id={before_id:,}")
    return timings


async def run(args: argparse.Namespace, db: Path) -> tuple[dict[str, list[float]], float, int]:
    chat = read_chat(args.csv)
    memory = await MemoryStore.open(db)
    build_s = 0.0
    try:
        have = await memory.count_messages()
        if have < args.lines:
            print(f"building {db}: {have:,} -> {args.lines:,} lines, batches of {args.batch:,}", flush=True)
            began = time.perf_counter()
            await build(memory, chat, have, args.lines, args.batch)
            build_s = time.perf_counter() - began
        else:
            print(f"reusing {db}: {have:,} lines")
        stored = await memory.count_messages()
        timings = await measure(memory, chat, min(stored, args.lines), args.queries, args.seed)
    finally:
        await memory.close()
    return timings, build_s, stored


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000, help="viewer lines in the database")
    parser.add_argument("--queries", type=int, default=500, help="recall calls timed (and as many block_for)")
    parser.add_argument("--batch", type=int, default=5000, help="lines recorded concurrently (one commit each)")
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="chat CSV whose texts and authors are cycled")
    parser.add_argument("--db", type=Path, help="SQLite file to build or reuse (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    # A database built earlier is reused as it is: the chat is read only to build one.
    require_inputs(parser, {"--csv": None if args.db is not None and args.db.exists() else args.csv})
    if args.lines < 1 or args.queries < 1 or args.batch < 1:
        parser.error("--lines, --queries and --batch must be positive")
    with tempfile.TemporaryDirectory(prefix="costar-recall-latency-") as scratch:
        db = args.db or Path(scratch) / "costar.sqlite3"
        timings, build_s, stored = asyncio.run(run(args, db))
        size = sum(os.path.getsize(path) for path in (db, Path(f"{db}-wal")) if path.exists())
    recall, block = timings["recall"], timings["block_for"]
    rows = [
        ("lines stored", f"{stored:,}"),
        ("build time", f"{build_s:.1f} s ({(stored / build_s if build_s else 0):,.0f} lines/s)" if build_s else "reused"),
        ("database size", f"{size / 2**20:,.0f} MiB"),
        ("queries", f"{len(recall)} (mean {statistics.fmean(timings['found']):.1f} lines found)"),
        ("recall p50 / p99 / max", f"{percentile(recall, 0.5):.2f} / {percentile(recall, 0.99):.2f} / {max(recall):.2f} ms"),
        ("block_for p50 / p99 / max", f"{percentile(block, 0.5):.2f} / {percentile(block, 0.99):.2f} / {max(block):.2f} ms"),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(
        f"RESULT recall_p50_ms={percentile(recall, 0.5):.2f} recall_p99_ms={percentile(recall, 0.99):.2f}"
        f" lines={stored}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
