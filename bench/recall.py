"""Long-term recall: does the prompt still hold what a viewer told Pip thousands of lines ago?

Each item of a facts file (JSONL: ``author``, ``disclosure``, ``question``, ``answer``) is fed in
order: the author says the disclosure (not to the bot), then ``--gap`` lines of real chat follow
(the press-briefing CSV, cycled; ``--regular-share`` of them re-attributed to the facts' authors, so
every regular says plenty of other things too). All of it goes through ``manager.hear`` only, with
``sent_at`` times spread over the last four days. Then (after ``--restart``: a fresh manager on the
same database, as after a bot restart) every author asks their question, addressed to Pip, through
``manager.handle``. An item is a recall hit when its answer (case-insensitive) is anywhere in the
prompt the backend got for that question. The table says where it was found: ``note`` (a note
from a self-disclosure), ``line`` (a full-text-recalled past line), ``elsewhere`` (outside the
remembered block: history or the system prompt, a hit by chance) and, for a miss, why.

Two optional fields: ``kind`` (any label, e.g. ``pattern``, ``wording``, ``spelling``, ``ranking``
as in ``tests/data/recall_meaning_dev.jsonl``) makes the bench print recall per kind, a row each,
and add ``recall_<kind>=`` keys to the RESULT line; ``also_said`` (a list of strings) are lines the
same author said before the disclosure (older, fed just before it): distractors the disclosure must
win against, or the older fact that a correction overrides. No ``also_said`` line may hold the answer.

Tokens are counted with SmolLM2's real tokenizer when the model cache has it (the production
count that the 160-token recall budget is measured in); ``--tokens approx`` uses the pessimistic
ApproxTokenCounter (about 3 bytes a token) instead, as the model-free tests do.

    python bench/recall.py                          # 40 items, 2,000 lines of chat between each
    python bench/recall.py --restart                # the same, asked after a restart
    python bench/recall.py --gap 200 --facts my_facts.jsonl
    python bench/recall.py --gap 200 --model embedded   # also asks SmolLM2 at temperature 0 (~8 s a reply on 2 CPU cores)
    python bench/recall.py --facts tests/data/recall_meaning_dev.jsonl --model llamacpp   # what `make run` answers
    python bench/recall.py --facts tests/data/recall_meaning_dev.jsonl --each-text-once   # a tuning run in ~2 minutes

``--model embedded`` and ``--model llamacpp`` build the backend exactly as the bot does at start-up
(``build_manager`` from settings): ``llamacpp`` is the default ``make run`` set-up, llama.cpp with
the adapters the persona cards bind (Pip's shipped LoRA), here at temperature 0.

The last line is ``RESULT recall=… answer_rate=… items=… gap=… restart=…`` (``answer_rate=n/a``
without ``--model``), then ``recall_<kind>=…`` for each kind when the items have one. A malformed facts file is refused with ``FILE:LINE: why`` and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.inputs import require_inputs  # noqa: E402
from bot.app import build_manager, close_manager  # noqa: E402
from engine.backends.base import Backend, GenerationRequest, TextStream  # noqa: E402
from engine.backends.scripted import ScriptedBackend  # noqa: E402
from engine.events import ChatEvent  # noqa: E402
from engine.manager import ConversationManager  # noqa: E402
from engine.prompting.tokens import ApproxTokenCounter, TokenCounter, TokenizerCounter  # noqa: E402
from engine.recall.disclosures import find_disclosures  # noqa: E402
from engine.recall.embedding import Embedder, Vectors, embedder_from_settings  # noqa: E402
from engine.recall.terms import query_terms  # noqa: E402
from engine.settings import Settings, load_settings  # noqa: E402
from memory import SqliteMemoryStore  # noqa: E402
from personas.card import PersonaCard  # noqa: E402

DEFAULT_FACTS = REPO / "tests" / "data" / "recall_facts.jsonl"
DEFAULT_FILLER = REPO.parent / "shared" / "data" / "live-chat-press-briefing.csv"
PLATFORM = "twitch"
CHANNEL = "recallbench"
FIELDS = ("author", "disclosure", "question", "answer")
MODELS = ("embedded", "llamacpp")  # backend kinds the bot builds itself from settings
MODEL_PATIENCE_S = 900.0  # how long one reply of a real model may take here (see run())
FEED_SPAN = (timedelta(days=4), timedelta(hours=1))  # first and last fed line, before the questions
DIAGNOSE_LIMIT = 20  # memory's most recalled lines per query


class FactsError(ValueError):
    """A facts file that cannot be used; the message names FILE:LINE."""


@dataclass(frozen=True, slots=True)
class Fact:
    author: str
    disclosure: str
    question: str
    answer: str
    line: int  # in the facts file
    kind: str | None = None  # the item's class of difficulty, reported separately
    also_said: tuple[str, ...] = ()  # the author's earlier lines, fed just before the disclosure


@dataclass(slots=True)
class Outcome:
    fact: Fact
    hit: bool = False
    where: str = "-"  # note, line, elsewhere, or - for a miss
    why: str = ""  # for a miss: what the prompt and memory say
    block: str | None = None  # the remembered block the prompt held
    event: ChatEvent | None = None  # the question, kept for diagnosing a miss
    shown: tuple[int, int] = (0, 0)  # notes and lines in the remembered block
    reply: str | None = None
    answered: bool = False  # the model's reply holds the answer (--model only)


class RecordingBackend(Backend):
    """Passes requests to ``inner`` and keeps each one, as ScriptedBackend does."""

    def __init__(self, inner: Backend, *, temperature: float | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.temperature = temperature
        self.requests: list[GenerationRequest] = []

    def stream(self, request: GenerationRequest) -> TextStream:
        if self.temperature is not None:
            request = replace(request, temperature=self.temperature)
        self.requests.append(request)
        return self.inner.stream(request)

    async def start(self) -> None:
        await self.inner.start()

    async def aclose(self) -> None:
        await self.inner.aclose()


# -- inputs -------------------------------------------------------------------------------------


def load_facts(path: Path) -> list[Fact]:
    """Every item of a JSONL facts file, checked; FactsError names the first bad row."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise FactsError(f"{path}: cannot read the facts file: {exc}") from exc
    facts: list[Fact] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise FactsError(f"{where}: not JSON ({exc.msg} at column {exc.colno})") from exc
        if not isinstance(row, dict):
            raise FactsError(f"{where}: expected a JSON object with {', '.join(FIELDS)}")
        missing = [name for name in FIELDS if not isinstance(row.get(name), str) or not row[name].strip()]
        if missing:
            raise FactsError(f"{where}: missing or empty string field(s): {', '.join(missing)}")
        author, disclosure, question, answer_text = (" ".join(row[name].split()) for name in FIELDS)
        kind, also_said = _optional_fields(row, where)
        fact = Fact(author, disclosure, question, answer_text, line=number, kind=kind, also_said=also_said)
        answer = fact.answer.casefold()
        if answer not in fact.disclosure.casefold():
            raise FactsError(f"{where}: the answer {fact.answer!r} is not in the disclosure")
        if answer in fact.question.casefold() or answer in fact.author.casefold():
            raise FactsError(f"{where}: the answer {fact.answer!r} is in the question or the author name")
        if any(answer in said.casefold() for said in fact.also_said):
            raise FactsError(f"{where}: the answer {fact.answer!r} is in an also_said line")
        facts.append(fact)
    if not facts:
        raise FactsError(f"{path}: no items")
    return facts


def _optional_fields(row: dict[str, object], where: str) -> tuple[str | None, tuple[str, ...]]:
    """``kind`` (a non-empty string) and ``also_said`` (a list of non-empty strings), when present."""
    kind = row.get("kind")
    if kind is not None and (not isinstance(kind, str) or not kind.strip() or not kind.strip().isidentifier()):
        raise FactsError(f"{where}: kind must be a single word (letters, digits, _), got {kind!r}")
    also_said = row.get("also_said", [])
    if not isinstance(also_said, list) or not all(isinstance(said, str) and said.strip() for said in also_said):
        raise FactsError(f"{where}: also_said must be a list of non-empty strings")
    return (kind.strip() if kind else None), tuple(" ".join(said.split()) for said in also_said)


def load_filler(path: Path) -> list[tuple[str, str]]:
    """(author, message) for every non-empty row of a chat CSV (author and message columns)."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [(row.get("author") or "", row.get("message") or "") for row in csv.DictReader(handle)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FactsError(f"{path}: cannot read the filler CSV: {exc}") from exc
    filler = [(author.strip() or "viewer", " ".join(text.split())) for author, text in rows if text.strip()]
    if not filler:
        raise FactsError(f"{path}: no rows with author and message columns")
    return filler


def build_feed(
    facts: Sequence[Fact], filler: Sequence[tuple[str, str]], gap: int, regular_share: float, seed: int, now: datetime
) -> list[ChatEvent]:
    """[Earlier lines,] disclosure, ``gap`` filler lines, next item, ...: none of it addressed to the bot."""
    rng = random.Random(seed)
    regulars = [fact.author for fact in facts]
    total = sum(len(fact.also_said) + 1 + gap for fact in facts)
    first, last = now - FEED_SPAN[0], now - FEED_SPAN[1]
    step = (last - first) / max(1, total - 1)
    feed: list[ChatEvent] = []
    filler_at = regular_at = 0

    def line(author: str, text: str) -> ChatEvent:
        index = len(feed)
        return ChatEvent(
            platform=PLATFORM,
            channel_id=CHANNEL,
            author_id=author.casefold(),
            author_name=author,
            text=text,
            message_id=f"feed-{index}",
            sent_at=first + step * index,
        )

    for fact in facts:
        feed.extend(line(fact.author, said) for said in fact.also_said)
        feed.append(line(fact.author, fact.disclosure))
        for _ in range(gap):
            author, text = filler[filler_at % len(filler)]
            filler_at += 1
            if rng.random() < regular_share:
                author = regulars[regular_at % len(regulars)]
                regular_at += 1
            feed.append(line(author, text))
    return feed


# -- the run ------------------------------------------------------------------------------------


def token_counter(settings: Settings, kind: str) -> tuple[TokenCounter, str]:
    tokenizer = settings.core.cache_dir / "models" / "smollm2" / "tokenizer.json"
    if kind == "model" and tokenizer.is_file():
        return TokenizerCounter(tokenizer), f"SmolLM2 tokenizer ({tokenizer})"
    if kind == "model":
        print(f"no tokenizer at {tokenizer}: counting tokens approximately", file=sys.stderr)
    return ApproxTokenCounter(), "ApproxTokenCounter (about 3 bytes a token)"


class EachTextOnce:
    """An embedder that runs the real one once per distinct text and gives repeats the same rows.

    The filler cycles a few thousand chat lines, so at gap 2,000 each is embedded twenty times over:
    ``--each-text-once`` makes a tuning run take a minute instead of half an hour. The rows are the
    model's own, so recall is the same as live, as long as the live worker drops no line (the
    bench says when it does); the feed's timing is no longer a live stream's.
    """

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimensions = inner.dimensions
        self._rows: dict[str, Vectors] = {}

    def embed(self, texts: Sequence[str]) -> Vectors:
        missing = [text for text in dict.fromkeys(texts) if text not in self._rows]
        if missing:
            self._rows.update(zip(missing, self.inner.embed(missing), strict=True))
        return np.stack([self._rows[text] for text in texts]).astype(np.float32)


async def open_manager(
    settings: Settings, counter: TokenCounter, model: str | None, embedder: Embedder | None = None
) -> tuple[ConversationManager, RecordingBackend]:
    if model in MODELS:
        # The bot's own start-up: backend (with its resilience wrapper), adapters and tokenizer from settings.
        manager = await build_manager(settings, embedder=embedder)
        recorder = RecordingBackend(manager.backend, temperature=0.0)
    else:
        recorder = RecordingBackend(ScriptedBackend(default="noted!"))
        manager = await build_manager(settings, backend=recorder, counter=counter, embedder=embedder)
    manager.backend = recorder
    await recorder.start()
    return manager, recorder


async def feed_lines(manager: ConversationManager, feed: Sequence[ChatEvent], batch: int) -> None:
    """Every line through ``manager.hear``; with embeddings on, at most the speed they are embedded.

    The feed is a flood far faster than chat: a worker backlog past half its bound waits to be
    embedded, so no line is dropped from recall by meaning because of the bench's own speed.
    """
    worker = manager.embeddings
    for start in range(0, len(feed), batch):
        await asyncio.gather(*(manager.hear(event) for event in feed[start : start + batch]))
        if worker is not None and worker.waiting > worker.backlog // 2:
            await worker.drain()
    if worker is not None:
        await worker.drain()


async def ask(manager: ConversationManager, recorder: RecordingBackend, fact: Fact, index: int) -> Outcome:
    outcome = Outcome(fact)
    event = ChatEvent(
        platform=PLATFORM,
        channel_id=CHANNEL,
        author_id=fact.author.casefold(),
        author_name=fact.author,
        text=fact.question,
        message_id=f"question-{index}",
        addresses_bot=True,
    )
    before = len(recorder.requests)
    reply = await manager.handle(event)
    outcome.reply = reply.text if reply else None
    outcome.answered = reply is not None and fact.answer.casefold() in reply.text.casefold()
    if len(recorder.requests) == before:
        outcome.why = "no prompt built (the question was not answered)"
        return outcome
    messages = recorder.requests[-1].messages
    answer = fact.answer.casefold()
    outcome.block, items = remembered_items(messages[-1].content)
    notes = [item for item in items if " told you " in item.split(":", 1)[0]]
    lines = [item for item in items if item not in notes]
    if any(answer in item.casefold() for item in notes):
        outcome.hit, outcome.where = True, "note"
    elif any(answer in item.casefold() for item in lines):
        outcome.hit, outcome.where = True, "line"
    elif any(answer in message.content.casefold() for message in messages):
        outcome.hit, outcome.where = True, "elsewhere"
    else:
        outcome.event, outcome.shown = event, (len(notes), len(lines))
    return outcome


def remembered_items(content: str) -> tuple[str | None, list[str]]:
    """The ``[What Pip remembers …]`` block of the viewer's message and its ``- …`` items."""
    if not content.startswith("[What "):
        return None, []
    block = content.rsplit("\n", 1)[0]
    return block, [line[2:] for line in block.splitlines() if line.startswith("- ")]


async def diagnose(memory: SqliteMemoryStore, persona: PersonaCard, recall_lines: int, outcome: Outcome) -> str:
    """Why the answer is not in the prompt, from memory's own answers (read only, after the run)."""
    event, fact, (shown_notes, shown) = outcome.event, outcome.fact, outcome.shown
    assert event is not None
    notes = await memory.notes_for(event.platform, event.author_id, persona.persona_id)
    shown_text = f"block: {shown_notes} notes + {shown} lines" if shown_notes + shown else "no block"
    answer = fact.answer.casefold()
    noteable = [d.text for d in find_disclosures(fact.disclosure) if answer in d.text.casefold()]
    if noteable:
        if not any(answer in note.text.casefold() for note in notes):
            return f"note evicted ({len(notes)} newer notes kept); {shown_text}"
        return f"note kept but cut by the token budget ({len(notes)} notes); {shown_text}"
    terms = query_terms(event.text, ignore=(persona.name, persona.display_name))
    if not terms:
        return f"no note; no search terms in the question; {shown_text}"
    found = await memory.recall(
        event.platform, event.channel_id, event.author_id, terms, before_id=2**62, limit=DIAGNOSE_LIMIT
    )
    own = [line for line in found if line.own]
    rank = next((n for n, line in enumerate(own, 1) if line.text == fact.disclosure), None)
    if rank is None:
        return f"no note; FTS terms {terms} miss it (not in the top {DIAGNOSE_LIMIT}); {shown_text}"
    if rank > recall_lines:
        return f"no note; FTS ranks it #{rank} of own lines for {terms}, {recall_lines} shown; {shown_text}"
    return f"no note; FTS found it (#{rank} for {terms}) but the token budget cut it; {shown_text}"


async def run(args: argparse.Namespace, data_dir: Path) -> tuple[list[Outcome], dict[str, float], str]:
    facts = load_facts(args.facts)
    filler = load_filler(args.filler)
    backend_kind = args.model or "scripted"
    # A real model's first reply may convert the persona's adapter to GGUF first (once, then cached): on a
    # busy 2-core machine that outlasts the production timeouts. The bench measures what is said, not how fast.
    patience = {"timeout_s": MODEL_PATIENCE_S} if args.model else {}
    settings = load_settings(
        None,
        core={"data_dir": data_dir},
        backend={"kind": backend_kind, "seed": args.seed, **patience},
        resilience={"first_chunk_timeout_s": MODEL_PATIENCE_S} if args.model else {},
    )
    counter, counted_with = token_counter(settings, args.tokens)
    feed = build_feed(facts, filler, args.gap, args.regular_share, args.seed, datetime.now(UTC))
    live = embedder_from_settings(settings) if args.each_text_once else None
    embedder = EachTextOnce(live) if live is not None else None
    timings: dict[str, float] = {}
    started = time.perf_counter()
    manager, recorder = await open_manager(settings, counter, args.model, embedder)
    timings["start-up"] = time.perf_counter() - started
    try:
        started = time.perf_counter()
        await feed_lines(manager, feed, args.batch)
        timings["feed"] = time.perf_counter() - started
        timings["lines fed"] = len(feed)
        if args.restart:
            started = time.perf_counter()
            await close_manager(manager)
            manager, recorder = await open_manager(settings, counter, args.model, embedder)
            timings["restart"] = time.perf_counter() - started
        started = time.perf_counter()
        outcomes = [await ask(manager, recorder, fact, index) for index, fact in enumerate(facts)]
        timings["questions"] = time.perf_counter() - started
        persona = manager.default_persona()
    finally:
        await close_manager(manager)
    # Misses are explained from memory itself, once the bot is gone: bench code uses only the manager's verbs.
    async with await SqliteMemoryStore.open(settings.db_path) as memory:
        for outcome in outcomes:
            if outcome.event is not None:
                outcome.why = await diagnose(memory, persona, settings.memory.recall_lines, outcome)
    if args.model in MODELS:
        counted_with = "the model's tokenizer (build_manager)"
    return outcomes, timings, counted_with


# -- report -------------------------------------------------------------------------------------


def _cut(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@dataclass(slots=True)
class KindCount:
    items: int = 0
    hits: int = 0
    answered: int = 0


def kind_counts(outcomes: Sequence[Outcome]) -> dict[str, KindCount]:
    """Items, recall hits and answers per ``kind``, in order of first appearance; empty without kinds."""
    counts: dict[str, KindCount] = {}
    for outcome in outcomes:
        if outcome.fact.kind is None:
            continue
        count = counts.setdefault(outcome.fact.kind, KindCount())
        count.items += 1
        count.hits += outcome.hit
        count.answered += outcome.answered
    return counts


def print_kind_table(kinds: dict[str, KindCount], with_model: bool) -> None:
    width = max(4, *(len(kind) for kind in kinds))
    print()
    print(f"{'kind':<{width}} {'items':>5} {'recall':>13}" + (f" {'answer rate':>13}" if with_model else ""))
    for kind, count in kinds.items():
        recalled = f"{count.hits}/{count.items} {count.hits / count.items:.3f}"
        answered = f" {f'{count.answered}/{count.items} {count.answered / count.items:.3f}':>13}" if with_model else ""
        print(f"{kind:<{width}} {count.items:>5} {recalled:>13}" + answered)


def report(args: argparse.Namespace, outcomes: list[Outcome], timings: dict[str, float], counted_with: str) -> str:
    with_model = args.model is not None
    author_w = max(6, *(len(o.fact.author) for o in outcomes))
    answer_w = max(6, *(min(16, len(o.fact.answer)) for o in outcomes))
    kinds = kind_counts(outcomes)
    kind_w = max([4, *(len(kind) for kind in kinds)])
    kind_column = f" {'kind':<{kind_w}}" if kinds else ""
    header = (
        f"{'#':>3} {'author':<{author_w}} {'answer':<{answer_w}}{kind_column} {'path':<4} {'recall':<6} {'where':<9}"
    )
    print(header + (" reply" if with_model else " why (misses)"))
    for number, outcome in enumerate(outcomes, 1):
        fact = outcome.fact
        path = (
            "note"
            if any(fact.answer.casefold() in d.text.casefold() for d in find_disclosures(fact.disclosure))
            else "fts"
        )
        item_kind = f" {fact.kind or '-':<{kind_w}}" if kinds else ""
        row = (
            f"{number:>3} {fact.author:<{author_w}} {_cut(fact.answer, 16):<{answer_w}}{item_kind} {path:<4}"
            f" {'hit' if outcome.hit else 'MISS':<6} {outcome.where:<9}"
        )
        if with_model:
            said = "(no reply)" if outcome.reply is None else _cut(outcome.reply, 70)
            row += f" {'+' if outcome.answered else '-'} {said}"
            if not outcome.hit:
                row += f"  [{outcome.why}]"
        elif not outcome.hit:
            row += f" {outcome.why}"
        print(row)
        if args.show == "all" or (args.show == "misses" and not outcome.hit):
            print("      " + (outcome.block or "(no remembered block)").replace("\n", "\n      "))
    hits = sum(o.hit for o in outcomes)
    recall = hits / len(outcomes)
    by_where = {where: sum(o.where == where for o in outcomes) for where in ("note", "line", "elsewhere")}
    print()
    print(f"tokens counted with  {counted_with}")
    print(f"lines fed            {timings['lines fed']:,.0f} in {timings['feed']:.1f} s"
          f" ({timings['lines fed'] / max(timings['feed'], 1e-9):,.0f} lines/s, batches of {args.batch})")  # fmt: skip
    if "restart" in timings:
        print(f"restart              {timings['restart']:.1f} s")
    print(f"questions            {len(outcomes)} in {timings['questions']:.1f} s")
    print(f"recall               {hits}/{len(outcomes)} = {recall:.3f}"
          f" (note {by_where['note']}, line {by_where['line']}, elsewhere {by_where['elsewhere']})")  # fmt: skip
    answer_rate = "n/a"
    if with_model:
        answered = sum(o.answered for o in outcomes)
        answer_rate = f"{answered / len(outcomes):.3f}"
        print(f"answer rate          {answered}/{len(outcomes)} = {answer_rate} ({args.model}, temperature 0)")
    if kinds:
        print_kind_table(kinds, with_model)
    result = (
        f"RESULT recall={recall:.3f} answer_rate={answer_rate} items={len(outcomes)} gap={args.gap}"
        f" restart={'true' if args.restart else 'false'}"
    ) + "".join(f" recall_{kind}={count.hits / count.items:.3f}" for kind, count in kinds.items())
    print(result)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--facts", type=Path, default=DEFAULT_FACTS, help="JSONL: author, disclosure, question, answer")
    parser.add_argument("--filler", type=Path, default=DEFAULT_FILLER, help="chat CSV (author, message) for the gaps")
    parser.add_argument("--gap", type=int, default=2000, help="filler lines between each disclosure and the next")
    parser.add_argument("--restart", action="store_true", help="ask the questions from a freshly built manager")
    parser.add_argument(
        "--regular-share", type=float, default=0.15, help="share of filler lines said by the facts' authors"
    )
    parser.add_argument(
        "--model", choices=MODELS, help="also ask a real model, built as the bot builds it (llamacpp: make run's)"
    )
    parser.add_argument("--tokens", choices=["model", "approx"], default="model", help="token counter (see above)")
    parser.add_argument(
        "--show", choices=["none", "misses", "all"], default="none", help="print the remembered block of these items"
    )
    parser.add_argument("--batch", type=int, default=200, help="lines heard concurrently while feeding")
    parser.add_argument("--seed", type=int, default=7, help="which filler lines regulars say; the model's seed")
    parser.add_argument(
        "--each-text-once",
        action="store_true",
        help="embed each distinct line once and reuse its rows (same recall, minutes not half an hour; see EachTextOnce)",
    )
    parser.add_argument("--data-dir", type=Path, help="where the SQLite file goes (default: a temporary folder)")
    args = parser.parse_args(argv)
    require_inputs(parser, {"--facts": args.facts, "--filler": args.filler})
    if args.gap < 0 or args.batch < 1 or not 0.0 <= args.regular_share <= 1.0:
        parser.error("--gap must be >= 0, --batch >= 1 and --regular-share within 0..1")
    if args.data_dir is not None and (args.data_dir / "costar.sqlite3").exists():
        parser.error(f"{args.data_dir} already holds a costar.sqlite3; pass an empty --data-dir")
    try:
        with tempfile.TemporaryDirectory(prefix="costar-recall-") as scratch:
            outcomes, timings, counted_with = asyncio.run(run(args, args.data_dir or Path(scratch)))
    except FactsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report(args, outcomes, timings, counted_with)
    return 0


if __name__ == "__main__":
    sys.exit(main())
