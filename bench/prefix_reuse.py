"""How much of each prompt a serving engine's prefix cache can reuse from the channel's last one.

Replays a recorded live chat (CSV: video_id, author, message, published_at) through the real
ConversationManager and prompt builder (scripted replies, a temporary SQLite file), renders every
prompt with the model's chat template, tokenises it, and measures the leading tokens it shares
with the previous prompt of the same channel, as a share of the new prompt's tokens. vLLM's prefix
cache can skip exactly that share of prefill (in full blocks, see docs/serving.md). Target: mean >= 0.90.

The share depends on the window: each turn appends the lines since the last reply, and each trim
(history cut to COSTAR_PROMPT_TRIM_TO of its budget, a new summary in the system message) rewrites
everything after the persona prompt. The RESULT is for 8192 tokens, the window docker-compose.yml
gives vLLM; 2048 (the CPU default, a third of it taken by the persona prompt) is shown beside it.

    python bench/prefix_reuse.py                       # the press-briefing chat, every 8th line to the bot
    python bench/prefix_reuse.py --csv chat.csv --every 4 --limit 3000 --context-tokens 4096
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import statistics
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.app import build_manager, close_manager  # noqa: E402
from engine.backends.base import ChatMessage  # noqa: E402
from engine.backends.scripted import ScriptedBackend  # noqa: E402
from engine.events import ChatEvent  # noqa: E402
from engine.prompting.tokens import TokenizerCounter  # noqa: E402
from engine.serving.model_store import ensure_default_model  # noqa: E402
from engine.settings import CoreSettings, PromptSettings, load_settings  # noqa: E402

DEFAULT_CSV = REPO.parent / "shared" / "data" / "live-chat-press-briefing.csv"
REPLIES = ("Ha, chat is on fire today!", "Good question, let's see what they say.", "Stay kind, crew of chat!")


@dataclass(frozen=True, slots=True)
class Turn:
    channel: str
    prompt_tokens: list[int]


def read_chat(path: Path, limit: int | None) -> Iterator[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.DictReader(handle)):
            if limit is not None and number >= limit:
                return
            if row.get("message", "").strip():
                yield row


def to_event(row: dict[str, str], addresses_bot: bool, number: int) -> ChatEvent:
    sent_at = datetime.fromisoformat(row["published_at"]) if row.get("published_at") else None
    extra: dict[str, Any] = {"sent_at": sent_at} if sent_at else {}
    return ChatEvent(
        platform="youtube",
        channel_id=row.get("video_id") or "chat",
        author_id=row["author"],
        author_name=row["author"],
        text=row["message"],
        message_id=f"m{number}",
        addresses_bot=addresses_bot,
        **extra,
    )


def chat_template(model_dir: Path):  # -> jinja2 Template
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    source = (model_dir / "chat_template.jinja").read_text(encoding="utf-8")
    return ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(source)


def shared_prefix(previous: Sequence[int], current: Sequence[int]) -> int:
    shared = 0
    for old, new in zip(previous, current, strict=False):
        if old != new:
            break
        shared += 1
    return shared


@dataclass(frozen=True, slots=True)
class Replay:
    csv_path: Path
    every: int
    limit: int | None
    context_tokens: int
    trim_to: float


async def replay(plan: Replay, counter: TokenizerCounter, data_dir: Path) -> tuple[list[ChatEvent], ScriptedBackend]:
    backend = ScriptedBackend(default=None)
    settings = load_settings(
        None,
        core={"data_dir": data_dir},
        backend={"kind": "scripted", "context_tokens": plan.context_tokens},
        prompt={"trim_to": plan.trim_to},
    )
    manager = await build_manager(settings, backend=backend, counter=counter)
    asked: list[ChatEvent] = []
    try:
        for number, row in enumerate(read_chat(plan.csv_path, plan.limit)):
            event = to_event(row, addresses_bot=number % plan.every == plan.every - 1, number=number)
            if event.addresses_bot:
                backend.enqueue([REPLIES[len(asked) % len(REPLIES)]])
            before = len(backend.requests)
            await manager.handle(event)
            # One entry per prompt sent: a line moderation silenced sends none, a regenerated reply two.
            asked.extend([event] * (len(backend.requests) - before))
    finally:
        await close_manager(manager)
    return asked, backend


def measure(
    asked: list[ChatEvent], prompts: list[tuple[ChatMessage, ...]], model_dir: Path, counter: TokenizerCounter
) -> list[tuple[str, int, int]]:
    """(channel, shared leading tokens, prompt tokens) for every turn after a channel's first."""
    template = chat_template(model_dir)
    tokenizer = counter._tokenizer  # the same tokenizer.json the builder counted with
    last: dict[str, list[int]] = {}
    rows: list[tuple[str, int, int]] = []
    for event, messages in zip(asked, prompts, strict=True):
        text = template.render(messages=[m.as_dict() for m in messages], add_generation_prompt=True)
        tokens = tokenizer.encode(text, add_special_tokens=False).ids
        previous = last.get(event.channel_key)
        if previous is not None:
            rows.append((event.channel_key, shared_prefix(previous, tokens), len(tokens)))
        last[event.channel_key] = tokens
    return rows


def summarise(rows: list[tuple[str, int, int]]) -> dict[str, float]:
    shares = [shared / total for _, shared, total in rows]
    return {
        "turns": len(rows),
        "mean": statistics.fmean(shares),
        "median": statistics.median(shares),
        "p10": statistics.quantiles(shares, n=10)[0] if len(shares) >= 10 else min(shares),
        "min": min(shares),
        "trims": sum(share < 0.5 for share in shares),  # a trim rewrites the history: most of the prompt
        "tokens": statistics.fmean(total for _, _, total in rows),
    }


def print_table(results: dict[int, dict[str, float]]) -> None:
    print(
        f"{'context':>8} {'turns':>6} {'mean':>6} {'median':>7} {'p10':>6} {'min':>6} {'<0.5':>5} {'prompt tokens':>14}"
    )
    for context, r in results.items():
        print(
            f"{context:>8} {r['turns']:>6.0f} {r['mean']:>6.3f} {r['median']:>7.3f} {r['p10']:>6.3f} {r['min']:>6.3f} "
            f"{r['trims']:>5.0f} {r['tokens']:>14.0f}"
        )


def run_one(
    args: argparse.Namespace, context_tokens: int, model_dir: Path, counter: TokenizerCounter
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="costar-bench-") as data_dir:
        plan = Replay(args.csv, args.every, args.limit, context_tokens, args.trim_to)
        asked, backend = asyncio.run(replay(plan, counter, Path(data_dir)))
    rows = measure(asked, [request.messages for request in backend.requests], model_dir, counter)
    if not rows:
        raise SystemExit("fewer than two turns in one channel: lower --every or raise --limit")
    return summarise(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--csv", type=Path, default=DEFAULT_CSV, help="chat CSV (video_id, author, message, published_at)"
    )
    parser.add_argument("--every", type=int, default=8, help="every Nth line addresses the bot (default 8)")
    parser.add_argument("--limit", type=int, default=None, help="replay at most this many lines")
    parser.add_argument(
        "--context-tokens",
        type=int,
        nargs="+",
        default=[8192, 2048],
        help="COSTAR_BACKEND_CONTEXT_TOKENS values to replay with; the first is the RESULT "
        "(default 8192, the window docker-compose.yml gives vLLM, then 2048, the CPU default)",
    )
    parser.add_argument("--trim-to", type=float, default=PromptSettings().trim_to, help="COSTAR_PROMPT_TRIM_TO")
    args = parser.parse_args(argv)
    if not args.csv.is_file():
        parser.error(f"no chat CSV at {args.csv}; pass --csv")
    model_dir = ensure_default_model(CoreSettings().cache_dir)
    counter = TokenizerCounter(model_dir / "tokenizer.json")
    results = {context: run_one(args, context, model_dir, counter) for context in args.context_tokens}
    print(
        f"{args.csv.name}: every {args.every}th line to the bot, trim to {args.trim_to}, "
        "SmolLM2 tokenizer + chat template; share = leading tokens shared with the channel's previous prompt"
    )
    print_table(results)
    first, *others = args.context_tokens
    extra = " ".join(f"prefix_reuse_at_{context}={results[context]['mean']:.3f}" for context in others)
    print(
        f"RESULT prefix_reuse={results[first]['mean']:.3f} turns={results[first]['turns']:.0f} "
        f"context={first} {extra} target=0.90".rstrip()
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
