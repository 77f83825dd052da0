"""How fast does Pip answer on a CPU? Each embedded backend on the same replayed chat, in one run.

Replays a recorded live chat (CSV: video_id, author, message, published_at; every Nth line
addresses the bot) through the real ConversationManager with the built-in Pip card (and its LoRA
adapter), once with every line in one channel and once spread over four channels (the live
context then changes hands every turn: llama.cpp's parked prompt states are what keep it warm).
Lines arrive at the pace they were recorded (``--speed``; gaps over ``--max-gap`` seconds are
shortened to it), and each addressed line's reply runs while later lines keep arriving, as in a
live chat; ``--speed 0`` sends every line as soon as the previous reply is stored instead.

For each backend it prints p50/p95 reply latency (line heard → stored reply), time to the first
streamed chunk, decode tokens/s (tokens after the first / time after the first chunk) and the
share of each reply's prompt already in the KV state when it started (kept from the last turn,
restored from a parked state, or read ahead while chat was arriving). As the reference, a bare
``llama_cpp.Llama`` with the same adapter decodes the same one-channel prompts (same GGUF,
template, sampling and threads), so costar's own overhead shows as decode_ratio_vs_bare; a second
bare row without the adapter shows what the adapter itself costs. Targets on a 2-core machine:
p50 <= 1.0 s (llama.cpp, one channel), speedup >= 4x over transformers, decode_ratio_vs_bare >= 0.9.

    python bench/embedded_latency.py                       # both backends, 12 addressed lines per layout
    python bench/embedded_latency.py --turns 24 --threads 1 --backends llamacpp --speed 0
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.inputs import require_inputs  # noqa: E402
from bot.app import build_manager, close_manager  # noqa: E402
from engine.backends.base import GenerationRequest  # noqa: E402
from engine.backends.factory import make_backend  # noqa: E402
from engine.backends.llama_adapters import LlamaAdapters  # noqa: E402
from engine.backends.llama_states import shared_prefix  # noqa: E402
from engine.backends.llamacpp import LlamaCppBackend, completion_options  # noqa: E402
from engine.events import ChatEvent, Reply  # noqa: E402
from engine.prompting.tokens import TokenizerCounter  # noqa: E402
from engine.serving.model_store import ensure_default_model, find_smollm2_gguf  # noqa: E402
from engine.settings import CoreSettings, Settings, load_settings  # noqa: E402
from tests.served import CappedReplies  # noqa: E402

DEFAULT_CSV = REPO.parent / "shared" / "data" / "live-chat-press-briefing.csv"
SEED = 7  # sampling as in production (Pip's temperature), the same every run


@dataclass
class Sample:
    latency_s: float
    first_chunk_s: float
    decode_s: float  # first chunk → last chunk
    completion_tokens: int
    prompt_tokens: int
    reused_tokens: int


@dataclass
class Run:
    backend: str
    channels: int
    samples: list[Sample] = field(default_factory=list)
    requests: list[GenerationRequest] = field(default_factory=list)

    def p(self, quantile: float) -> float:
        latencies = sorted(sample.latency_s for sample in self.samples)
        return latencies[min(len(latencies) - 1, round(quantile * (len(latencies) - 1)))]

    def decode_rate(self) -> float:
        tokens = sum(max(0, s.completion_tokens - 1) for s in self.samples)
        seconds = sum(s.decode_s for s in self.samples)
        return tokens / seconds if seconds else 0.0

    def reuse(self) -> float:
        return sum(s.reused_tokens for s in self.samples) / max(1, sum(s.prompt_tokens for s in self.samples))


def chat_lines(path: Path, every: int, channels: int, max_gap_s: float) -> Iterator[tuple[float, ChatEvent]]:
    """(seconds since the first line, its gaps capped at ``max_gap_s``; the line) in recorded order."""
    offset, previous = 0.0, None
    with path.open(newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.DictReader(handle)):
            if not row.get("message", "").strip():
                continue
            try:
                sent = datetime.datetime.fromisoformat(row.get("published_at") or "")
            except ValueError:
                sent = None  # no usable time: sent right after the line before it
            if sent is not None and previous is not None:
                offset += min(max_gap_s, max(0.0, (sent - previous).total_seconds()))
            previous = sent or previous
            yield (
                offset,
                ChatEvent(
                    platform="youtube",
                    channel_id=f"press-{number % channels}",
                    author_id=row["author"],
                    author_name=row["author"],
                    text=row["message"],
                    message_id=f"m{number}",
                    addresses_bot=number % every == every - 1,
                ),
            )


def settings_for(kind: str, threads: int, data_dir: Path) -> Settings:
    return load_settings(
        None,
        core={"data_dir": data_dir},
        backend={"kind": kind, "threads": threads, "seed": SEED, "timeout_s": 600.0},
    )


async def timed_reply(manager, event: ChatEvent) -> Sample | None:
    heard = await manager.hear(event)
    if heard.blocked:
        return None
    started = time.perf_counter()
    first = last = None
    reply: Reply | None = None
    async for item in manager.generate(heard):
        now = time.perf_counter()
        if isinstance(item, Reply):
            reply = item
        elif item:
            first = first or now
            last = now
    finished = time.perf_counter()
    if reply is None or reply.usage is None or first is None or last is None:
        return None
    usage = reply.usage
    return Sample(
        finished - started,
        first - started,
        last - first,
        usage.completion_tokens or 0,
        usage.prompt_tokens or 0,
        usage.cached_prompt_tokens or 0,
    )


async def replay(kind: str, channels: int, args: argparse.Namespace, counter: TokenizerCounter) -> Run:
    run = Run(kind, channels)
    with tempfile.TemporaryDirectory(prefix="costar-latency-") as data_dir:
        settings = settings_for(kind, args.threads, Path(data_dir))
        # Kept requests let the bare reference decode exactly the same prompts.
        backend = CappedReplies(make_backend(settings, counter=counter), max_tokens=None)
        manager = await build_manager(settings, backend=backend, counter=counter)
        try:
            await manager.backend.start()
            # Loads and first-touches the model; not measured. In the first chat channel, which a live
            # bot's first reply would claim the same way.
            warm_up = ChatEvent("youtube", "press-0", "host", "host", "hello Pip!", "w0", addresses_bot=True)
            await manager.handle(warm_up)
            backend.requests.clear()
            replies = await feed_chat(manager, channels, args)
            run.samples = [sample for sample in replies if sample is not None]
        finally:
            await close_manager(manager)
    run.requests = backend.requests
    return run


async def feed_chat(manager, channels: int, args: argparse.Namespace) -> list[Sample | None]:
    """Hear the chat at its recorded pace; each addressed line's reply runs alongside."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    replies: list[asyncio.Task[Sample | None]] = []
    for offset, event in chat_lines(args.csv, args.every, channels, args.max_gap):
        if args.speed > 0:
            await asyncio.sleep(max(0.0, started + offset / args.speed - loop.time()))
        if not event.addresses_bot:
            await manager.hear(event)
            continue
        replies.append(asyncio.create_task(timed_reply(manager, event)))
        if args.speed <= 0:
            await replies[-1]
        if len(replies) >= args.turns:
            break
    return list(await asyncio.gather(*replies))


def bare_reference(requests: list[GenerationRequest], threads: int, *, adapter: bool) -> Run:
    """llama_cpp.Llama alone on the same prompts: no manager, no queue, no post-processing.

    ``adapter``: with the LoRA adapter the requests name (converted as the backend converts it)."""
    from llama_cpp import Llama

    cache = Path(tempfile.gettempdir())
    template = LlamaCppBackend(find_smollm2_gguf(), context_tokens=2048, adapter_cache_dir=cache)
    template.load()  # only its chat template and tokenizer are used
    llm = Llama(str(find_smollm2_gguf()), n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False)
    adapters = LlamaAdapters(CoreSettings().cache_dir, find_smollm2_gguf())
    adapters.attach(llm)
    adapter_paths = {request.adapter_path for request in requests}
    chosen = adapters.gguf_for(next(iter(adapter_paths))) if adapter and len(adapter_paths) == 1 else None
    adapters.activate(chosen)
    run = Run("bare + adapter" if chosen else "bare, no adapter", 1)
    for request in requests:
        tokens = template.prompt_tokens(request.messages)
        reused = shared_prefix(llm.input_ids[: llm.n_tokens].tolist(), tokens)  # what llama.cpp keeps by itself
        started = time.perf_counter()
        first = last = None
        for chunk in llm.create_completion(tokens, **completion_options(request)):
            now = time.perf_counter()
            first = first or now
            last = now if chunk["choices"][0]["text"] or last is None else last
        if first is None or last is None:
            continue
        decoded = llm.n_tokens - len(tokens)
        run.samples.append(Sample(last - started, first - started, last - first, decoded, len(tokens), reused))
    return run


def print_table(runs: list[Run]) -> None:
    print(
        f"{'backend':<16} {'channels':>8} {'replies':>7} {'p50 s':>6} {'p95 s':>6} {'first chunk p50 s':>17} "
        f"{'decode tok/s':>12} {'prefix reused':>13}"
    )
    for run in runs:
        first_chunk = statistics.median(sample.first_chunk_s for sample in run.samples)
        print(
            f"{run.backend:<16} {run.channels:>8} {len(run.samples):>7} {run.p(0.5):>6.2f} {run.p(0.95):>6.2f} "
            f"{first_chunk:>17.2f} {run.decode_rate():>12.1f} {run.reuse():>13.2f}"
        )


async def measure(args: argparse.Namespace, counter: TokenizerCounter) -> tuple[list[Run], list[Run]]:
    """The backends' runs, and the bare references: decoded right after llama.cpp's one-channel run,
    so that the decode rates compared are minutes apart, not a whole benchmark."""
    runs, bare = [], []
    for kind in args.backends:
        for channels in (1, 4):
            runs.append(await replay(kind, channels, args, counter))
            print(f"  {kind}, {channels} channel(s): {len(runs[-1].samples)} replies", file=sys.stderr)
            if (kind, channels) == ("llamacpp", 1):
                bare = [bare_reference(runs[-1].requests, args.threads, adapter=flag) for flag in (True, False)]
    return runs, bare


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="chat CSV (video_id, author, message, ...)")
    parser.add_argument("--every", type=int, default=8, help="every Nth line addresses the bot (default 8)")
    parser.add_argument(
        "--turns", type=int, default=12, help="addressed lines per layout (default 12; moderation may withhold some)"
    )
    parser.add_argument("--threads", type=int, default=2, help="COSTAR_BACKEND_THREADS for every backend (default 2)")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="1: the recorded pace, 2: twice as fast, 0: no waiting (default 1)"
    )
    parser.add_argument("--max-gap", type=float, default=10.0, help="longest silence replayed, seconds (default 10)")
    parser.add_argument(
        "--backends", nargs="+", default=["llamacpp", "embedded"], choices=["llamacpp", "embedded"], help="which to run"
    )
    args = parser.parse_args(argv)
    require_inputs(parser, {"--csv": args.csv})
    counter = TokenizerCounter(ensure_default_model(CoreSettings().cache_dir) / "tokenizer.json")
    runs, bare_runs = asyncio.run(measure(args, counter))
    one_channel = {run.backend: run for run in runs if run.channels == 1}
    bare = bare_runs[0] if bare_runs else None
    pace = f"at {args.speed:g}x the recorded pace" if args.speed > 0 else "each line right after the last reply"
    print(
        f"{args.csv.name}: every {args.every}th line to Pip, {pace}, {args.turns} addressed lines per layout, "
        f"{args.threads} threads"
    )
    print_table([*runs, *bare_runs])
    fast = one_channel.get("llamacpp")
    slow = one_channel.get("embedded")
    p50_fast = fast.p(0.5) if fast else float("nan")
    p50_slow = slow.p(0.5) if slow else float("nan")
    ratio = fast.decode_rate() / bare.decode_rate() if fast and bare and bare.decode_rate() else float("nan")
    print(
        f"RESULT p50_s_llamacpp={p50_fast:.3f} p50_s_transformers={p50_slow:.3f} speedup={p50_slow / p50_fast:.2f} "
        f"decode_ratio_vs_bare={ratio:.2f} targets=p50<=1.0,speedup>=4,decode_ratio>=0.9"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
