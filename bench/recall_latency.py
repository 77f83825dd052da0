"""Recall latency at scale: how long memory's full-text recall takes on a million stored lines.

Builds a memory database (or reuses ``--db``) holding ``--lines`` viewer lines: the press-briefing
chat's texts, cycled, under varied authors (the CSV's authors with a per-cycle suffix) across a few
channels, with ``sent_at`` spread over 30 days. Lines go in through ``SqliteMemoryStore.record_message``,
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
    python bench/recall_latency.py --vectors --db /tmp/recall-1m-vectors.sqlite3

``--vectors`` (recall by meaning): every built line the embedding worker would embed
(``carries_a_fact`` or ``worth_embedding``: 89% of the press-briefing chat) also gets its vector,
through ``SqliteMemoryStore.add_vectors``, as the embedding worker stores them. Vectors are the real
all-MiniLM-L6-v2 embeddings of the CSV's lines (each distinct text embedded once, then reused as
the text is cycled). Then it times both searches of ``memory.nearest_lines`` per question (the
speaker's own lines, then the channel's), with the question embedded beforehand, and separately
how long embedding one question takes. The first ``--cold`` searches after opening the database
(SQLite's page cache empty, the OS cache as it is) are reported apart from the warm ones.

The last line is ``RESULT recall_p50_ms=… recall_p99_ms=… lines=…`` (plus ``vector_p50_ms=…
vector_p99_ms=… vector_cold_max_ms=… vectors=…`` with ``--vectors``).
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

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.inputs import require_inputs  # noqa: E402
from engine.events import ChatEvent  # noqa: E402
from engine.prompting.tokens import ApproxTokenCounter, TokenCounter, TokenizerCounter  # noqa: E402
from engine.recall.embedding import LocalEmbedder  # noqa: E402
from engine.recall.recaller import Recaller  # noqa: E402
from engine.recall.selection import carries_a_fact, worth_embedding  # noqa: E402
from engine.recall.terms import query_terms  # noqa: E402
from engine.serving.model_store import ensure_minilm  # noqa: E402
from engine.settings import CoreSettings, MemorySettings  # noqa: E402
from memory import LineVector, RecalledLine, SqliteMemoryStore, StoredMessage, VectorSpace  # noqa: E402
from personas.card import PersonaCard  # noqa: E402
from personas.registry import BUILTIN_CARDS_DIR, PersonaRegistry  # noqa: E402

DEFAULT_CSV = REPO.parent / "shared" / "data" / "live-chat-press-briefing.csv"
PLATFORM = "twitch"
CHANNELS = ("cozyvariety", "speedrunners", "latenightchat", "retrocorner")
Vectors = npt.NDArray[np.float32]
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


def embedded_rows(chat: Sequence[tuple[str, str]], embedder: LocalEmbedder) -> dict[int, Vectors]:
    """The real vector of each CSV row the embedding rule selects (each distinct text embedded once)."""
    chosen = [
        row for row, (_, text) in enumerate(chat) if carries_a_fact(text, addressed=False) or worth_embedding(text)
    ]
    texts = sorted({chat[row][1] for row in chosen})
    began = time.perf_counter()
    vectors = embedder.embed(texts)
    took = time.perf_counter() - began
    print(f"embedded {len(texts):,} distinct lines in {took:.1f} s ({len(texts) / took:,.0f}/s, 1 thread)", flush=True)
    by_text = dict(zip(texts, vectors, strict=True))
    return {row: by_text[chat[row][1]] for row in chosen}


async def build(
    memory: SqliteMemoryStore,
    chat: Sequence[tuple[str, str]],
    have: int,
    lines: int,
    batch: int,
    vectors: dict[int, Vectors] | None = None,
) -> None:
    start = datetime.now(UTC) - SPAN
    report_every = max(batch, lines // 10)
    began = time.perf_counter()
    for first in range(have, lines, batch):
        events = [line_event(chat, index, lines, start) for index in range(first, min(first + batch, lines))]
        await asyncio.gather(*(memory.record_message(event) for event in events))
        if vectors is not None:  # as the embedding worker stores them: one transaction per batch
            rows = [(index % len(chat), event) for index, event in zip(range(first, lines), events, strict=False)]
            await memory.add_vectors(
                [LineVector(event.platform, event.message_id, vectors[row]) for row, event in rows if row in vectors]
            )
        done = first + len(events)
        if done % report_every < batch or done == lines:
            elapsed = time.perf_counter() - began
            print(f"  {done:>10,} lines  {elapsed:7.1f} s  {(done - have) / elapsed:9,.0f} lines/s", flush=True)


def percentile(values: Sequence[float], share: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=1000, method="inclusive")[int(share * 1000) - 1]


def minilm() -> LocalEmbedder:
    embedder = LocalEmbedder(ensure_minilm(CoreSettings().cache_dir))
    embedder.load()
    return embedder


async def measure_vectors(
    memory: SqliteMemoryStore, asked: Sequence[ChatEvent], embedder: LocalEmbedder, cold: int
) -> dict[str, list[float]]:
    """Both nearest_lines searches per question (own, then channel), the first ``cold`` apart."""
    top = await memory.count_messages()
    before_id = max(1, top - HISTORY_WINDOW)
    timings: dict[str, list[float]] = {"embed_query": [], "cold": [], "warm": [], "own_found": []}
    questions = []
    for event in asked:
        began = time.perf_counter()
        questions.append(embedder.embed([event.text])[0])
        timings["embed_query"].append((time.perf_counter() - began) * 1000)
    for number, (event, question) in enumerate(zip(asked, questions, strict=True)):
        began = time.perf_counter()
        own = await memory.nearest_lines(
            event.platform, event.channel_id, event.author_id, question, own_only=True, before_id=before_id, limit=3
        )
        await memory.nearest_lines(
            event.platform, event.channel_id, event.author_id, question, own_only=False, before_id=before_id, limit=3
        )
        timings["cold" if number < cold else "warm"].append((time.perf_counter() - began) * 1000)
        timings["own_found"].append(len(own))
    return timings


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


def questions(chat: Sequence[tuple[str, str]], lines: int, top: int, queries: int, seed: int) -> list[ChatEvent]:
    """Real chat lines asked of Pip by authors who have lines stored (the same for every run of a seed)."""
    rng = random.Random(seed)
    persona = pip_card()
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
    return asked


async def measure(memory: SqliteMemoryStore, asked: Sequence[ChatEvent]) -> dict[str, list[float]]:
    persona = pip_card()
    settings = MemorySettings()
    counter, counted_with = token_counter()
    recaller = Recaller(memory, settings, counter.count)
    top = await memory.count_messages()
    before_id = max(1, top - HISTORY_WINDOW)
    for event in asked[: len(asked) // 2]:  # half of the askers have notes, as regulars do
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
    embedder = minilm() if args.vectors else None
    build_s = 0.0
    async with await SqliteMemoryStore.open(db) as memory:
        if embedder is not None:
            await memory.use_vector_space(VectorSpace(embedder.name, embedder.dimensions))
        have = await memory.count_messages()
        if have < args.lines:
            print(f"building {db}: {have:,} -> {args.lines:,} lines, batches of {args.batch:,}", flush=True)
            vectors = embedded_rows(chat, embedder) if embedder is not None else None
            began = time.perf_counter()
            await build(memory, chat, have, args.lines, args.batch, vectors)
            build_s = time.perf_counter() - began
        else:
            print(f"reusing {db}: {have:,} lines")
    # Opened again: the timings start from SQLite's empty page cache, as after a restart.
    async with await SqliteMemoryStore.open(db) as memory:
        stored = await memory.count_messages()
        asked = questions(chat, min(stored, args.lines), stored, args.queries, args.seed)
        timings: dict[str, list[float]] = {}
        if embedder is not None:
            await memory.use_vector_space(VectorSpace(embedder.name, embedder.dimensions))
            timings |= await measure_vectors(memory, asked, embedder, args.cold)
            timings["vectors"] = [float(await memory.count_vectors())]
        timings |= await measure(memory, asked)
    return timings, build_s, stored


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000, help="viewer lines in the database")
    parser.add_argument("--queries", type=int, default=500, help="recall calls timed (and as many block_for)")
    parser.add_argument("--batch", type=int, default=5000, help="lines recorded concurrently (one commit each)")
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="chat CSV whose texts and authors are cycled")
    parser.add_argument("--db", type=Path, help="SQLite file to build or reuse (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--vectors", action="store_true", help="also store and time recall by meaning")
    parser.add_argument("--cold", type=int, default=5, help="--vectors: the first N searches are reported as cold")
    args = parser.parse_args(argv)
    # A database built earlier is reused as it is: the chat is read only to build one.
    require_inputs(parser, {"--csv": None if args.db is not None and args.db.exists() else args.csv})
    if args.lines < 1 or args.queries < 1 or args.batch < 1 or not 0 <= args.cold < args.queries:
        parser.error("--lines, --queries and --batch must be positive, --cold below --queries")
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
    result = f"RESULT recall_p50_ms={percentile(recall, 0.5):.2f} recall_p99_ms={percentile(recall, 0.99):.2f}"
    if args.vectors:
        warm, cold, embed = timings["warm"], timings["cold"], timings["embed_query"]
        rows += [
            ("vectors stored", f"{int(timings['vectors'][0]):,}"),
            ("by meaning, warm p50 / p99 / max", f"{percentile(warm, 0.5):.2f} / {percentile(warm, 0.99):.2f} / {max(warm):.2f} ms"),
            ("by meaning, first searches (cold)", " ".join(f"{value:.1f}" for value in cold) + " ms"),
            ("embedding one question p50 / p99", f"{percentile(embed, 0.5):.1f} / {percentile(embed, 0.99):.1f} ms"),
            ("own lines found by meaning (mean)", f"{statistics.fmean(timings['own_found']):.1f}"),
        ]  # fmt: skip
        result += (
            f" vector_p50_ms={percentile(warm, 0.5):.2f} vector_p99_ms={percentile(warm, 0.99):.2f}"
            f" vector_cold_max_ms={max(cold, default=0.0):.1f} embed_query_p50_ms={percentile(embed, 0.5):.1f}"
            f" vectors={int(timings['vectors'][0])}"
        )
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(f"{result} lines={stored}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
