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

With ``--vllm URL`` the replay goes through the OpenAI backend to a real vLLM server (real
replies, capped at ``--max-tokens``), and the server's own prefix-cache hit rate over the replay
(``vllm:prefix_cache_hits_total / vllm:prefix_cache_queries_total``, tokens) is reported next to
the bench's shares: ``token_share`` is the same ratio computed here (every prompt's tokens, a
channel's first prompt sharing none). Target: server_hit_rate >= 0.85 and within 0.05 of
prefix_reuse. Start the server with a window of at least ``--context-tokens`` and send it nothing
else meanwhile (see docs/serving.md#vllm-without-a-gpu).

    python bench/prefix_reuse.py                       # the press-briefing chat, every 8th line to the bot
    python bench/prefix_reuse.py --csv chat.csv --every 4 --limit 3000 --context-tokens 4096
    python bench/prefix_reuse.py --vllm http://127.0.0.1:8000/v1 --context-tokens 8192
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import statistics
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.inputs import require_inputs  # noqa: E402
from bot.app import build_manager, close_manager  # noqa: E402
from engine.backends.base import ChatMessage, GenerationRequest  # noqa: E402
from engine.backends.llama_states import shared_prefix  # noqa: E402
from engine.backends.scripted import ScriptedBackend  # noqa: E402
from engine.events import ChatEvent  # noqa: E402
from engine.manager import ConversationManager  # noqa: E402
from engine.prompting.tokens import TokenizerCounter  # noqa: E402
from engine.serving.model_store import ensure_default_model  # noqa: E402
from engine.settings import CoreSettings, PromptSettings, load_settings  # noqa: E402
from tests.served import CappedReplies, server_counters, server_max_model_len  # noqa: E402

DEFAULT_CSV = REPO.parent / "shared" / "data" / "live-chat-press-briefing.csv"
HIT_COUNTERS = ("vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total")
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


@dataclass(frozen=True, slots=True)
class Replay:
    csv_path: Path
    every: int
    limit: int | None
    context_tokens: int
    trim_to: float
    server: str | None = None  # a real OpenAI-compatible server's base URL; None: scripted replies
    model: str = "smollm2"  # COSTAR_BACKEND_MODEL on the server
    personas_dir: Path | None = None
    max_tokens: int | None = None  # reply cap against a real server


async def replay_manager(plan: Replay, counter: TokenizerCounter, data_dir: Path) -> ConversationManager:
    backend: dict[str, object] = {"kind": "scripted", "context_tokens": plan.context_tokens}
    if plan.server:
        backend |= {"kind": "openai", "base_url": plan.server, "model": plan.model, "timeout_s": 600}
    core: dict[str, object] = {"data_dir": data_dir}
    if plan.personas_dir:
        core["personas_dir"] = plan.personas_dir
    # A CPU server re-reads a whole window after each trim: minutes under load, not a fault here.
    patience = {"first_chunk_timeout_s": 600.0, "idle_timeout_s": 600.0} if plan.server else {}
    settings = load_settings(None, core=core, backend=backend, prompt={"trim_to": plan.trim_to}, resilience=patience)
    if not plan.server:
        return await build_manager(settings, backend=ScriptedBackend(default=None), counter=counter)
    manager = await build_manager(settings, counter=counter)
    manager.backend = CappedReplies(manager.backend, plan.max_tokens)
    await manager.backend.start()  # the start-up check: every persona's adapter is served
    return manager


async def replay(
    plan: Replay, counter: TokenizerCounter, data_dir: Path
) -> tuple[list[ChatEvent], list[GenerationRequest]]:
    manager = await replay_manager(plan, counter, data_dir)
    backend = manager.backend
    assert isinstance(backend, ScriptedBackend | CappedReplies)
    asked: list[ChatEvent] = []
    try:
        for number, row in enumerate(read_chat(plan.csv_path, plan.limit)):
            event = to_event(row, addresses_bot=number % plan.every == plan.every - 1, number=number)
            if event.addresses_bot and isinstance(backend, ScriptedBackend):
                backend.enqueue([REPLIES[len(asked) % len(REPLIES)]])
            before = len(backend.requests)
            await manager.handle(event)
            # One entry per prompt sent: a line moderation silenced sends none, a regenerated reply two.
            asked.extend([event] * (len(backend.requests) - before))
            if plan.server and event.addresses_bot and len(asked) % 50 == 0:
                print(f"  {len(asked)} prompts sent ({number + 1} lines)", file=sys.stderr, flush=True)
    finally:
        await close_manager(manager)
    return asked, backend.requests


def measure(
    asked: list[ChatEvent], prompts: list[tuple[ChatMessage, ...]], model_dir: Path, counter: TokenizerCounter
) -> tuple[list[tuple[str, int, int]], int]:
    """(channel, shared leading tokens, prompt tokens) for every turn after a channel's first, and
    the tokens of the channels' first prompts (nothing to share with)."""
    template = chat_template(model_dir)
    tokenizer = counter._tokenizer  # the same tokenizer.json the builder counted with
    last: dict[str, list[int]] = {}
    rows: list[tuple[str, int, int]] = []
    first_tokens = 0
    for event, messages in zip(asked, prompts, strict=True):
        text = template.render(messages=[m.as_dict() for m in messages], add_generation_prompt=True)
        tokens = tokenizer.encode(text, add_special_tokens=False).ids
        previous = last.get(event.channel_key)
        if previous is not None:
            rows.append((event.channel_key, shared_prefix(previous, tokens), len(tokens)))
        else:
            first_tokens += len(tokens)
        last[event.channel_key] = tokens
    return rows, first_tokens


def summarise(rows: list[tuple[str, int, int]], first_tokens: int) -> dict[str, float]:
    shares = [shared / total for _, shared, total in rows]
    return {
        # What a server's token counters measure: shared tokens over all prompt tokens sent.
        "token_share": sum(shared for _, shared, _ in rows) / (first_tokens + sum(total for _, _, total in rows)),
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
    plan = Replay(
        args.csv,
        args.every,
        args.limit,
        context_tokens,
        args.trim_to,
        args.vllm,
        args.model,
        args.personas,
        args.max_tokens,
    )
    before = server_counters(args.vllm) if args.vllm else {}
    with tempfile.TemporaryDirectory(prefix="costar-bench-") as data_dir:
        asked, requests = asyncio.run(replay(plan, counter, Path(data_dir)))
    rows, first_tokens = measure(asked, [request.messages for request in requests], model_dir, counter)
    if not rows:
        raise SystemExit("fewer than two turns in one channel: lower --every or raise --limit")
    result = summarise(rows, first_tokens)
    if args.vllm:
        after = server_counters(args.vllm)
        hits, queries = (after[name] - before.get(name, 0.0) for name in HIT_COUNTERS)
        result |= {"server_hit_rate": hits / queries, "server_hits": hits, "server_queries": queries}
    return result


def check_server_window(args: argparse.Namespace) -> None:
    window = server_max_model_len(args.vllm, args.model)
    if window is not None and window < max(args.context_tokens):
        raise SystemExit(
            f"the server's window is {window} tokens, below --context-tokens {max(args.context_tokens)}: "
            "start it with a larger --max-model-len (COSTAR_BACKEND_CONTEXT_TOKENS for costar vllm-args)"
        )


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
    parser.add_argument("--vllm", metavar="URL", help="replay against this vLLM server (http://HOST:PORT/v1)")
    parser.add_argument("--model", default="smollm2", help="with --vllm: COSTAR_BACKEND_MODEL (default smollm2)")
    parser.add_argument("--personas", type=Path, help="with --vllm: COSTAR_PERSONAS_DIR (cards bound to adapters)")
    parser.add_argument("--max-tokens", type=int, default=32, help="with --vllm: reply cap (default 32)")
    args = parser.parse_args(argv)
    require_inputs(parser, {"--csv": args.csv, "--personas": args.personas})
    if args.vllm:
        # One server, one window: other contexts would need other servers.
        args.context_tokens = args.context_tokens[:1]
        check_server_window(args)
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
    if args.vllm:
        server = results[first]
        print(
            f"vLLM at {args.vllm}: {server['server_hits']:.0f} of {server['server_queries']:.0f} prompt tokens "
            f"from its prefix cache; computed here: token_share={server['token_share']:.3f}"
        )
        extra = f"server_hit_rate={server['server_hit_rate']:.3f} token_share={server['token_share']:.3f}"
    target = "target=0.85/0.05" if args.vllm else "target=0.90"
    print(
        f"RESULT prefix_reuse={results[first]['mean']:.3f} {extra} turns={results[first]['turns']:.0f} "
        f"context={first} {target}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
