"""Do conversations in different channels generate concurrently? K channels at once vs one.

Each round sends one addressed line to each of K fresh channels at once through the real
ConversationManager and the OpenAI-compatible backend, and compares the wall time with one line
in one channel: ratio = time(K concurrent) / time(one). A manager that serialised channels would
show ratio ~= K; the target against a server with a fixed per-request delay (tests/fake_vllm.py,
which like vLLM handles requests in parallel) is <= 1.25 for K <= COSTAR_BACKEND_MAX_CONCURRENCY.

The same is measured against `transformers serve` with SmolLM2 on the CPU for reference: that
server generates one request at a time (no continuous batching by default), so its ratio shows
the server, not the bot. On a shared 2-core machine one reply there takes tens of seconds, so that
part runs one round with --cpu-k channels and replies capped at --cpu-max-tokens.

With ``--vllm URL`` only that server is measured (a real vLLM, e.g. its CPU build, see
docs/serving.md#vllm-without-a-gpu): channel i speaks with persona i of ``--mix`` in turn, so each
batch mixes LoRA adapters when the cards in ``--personas`` bind them; ``throughput_gain`` is
K / ratio, the replies per unit of time K channels get compared with one.

    python bench/concurrency.py                     # K=4, 1.0 s delay, then transformers serve (K=2)
    python bench/concurrency.py -k 8 --delay 0.5 --skip-transformers
    python bench/concurrency.py --vllm http://127.0.0.1:8000/v1 --personas CARDS -k 4 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.inputs import require_inputs  # noqa: E402
from bot.app import build_manager, close_manager  # noqa: E402
from engine.events import ChatEvent  # noqa: E402
from engine.manager import ConversationManager  # noqa: E402
from engine.prompting.tokens import TokenizerCounter  # noqa: E402
from engine.serving.model_store import ensure_default_model  # noqa: E402
from engine.settings import CoreSettings, load_settings  # noqa: E402
from tests.fake_vllm import FakeVllm  # noqa: E402
from tests.served import CappedReplies  # noqa: E402
from tests.transformers_serve import MODEL_NAME, serve_smollm2  # noqa: E402


def line_for(channel: str) -> ChatEvent:
    return ChatEvent(
        platform="twitch",
        channel_id=channel,
        author_id=f"viewer-{channel}",
        author_name="viewer",
        text="hey pip, what's your favourite game?",
        addresses_bot=True,
    )


async def timed_round(manager: ConversationManager, channels: list[str]) -> float:
    started = time.perf_counter()
    replies = await asyncio.gather(*(manager.handle(line_for(channel)) for channel in channels))
    elapsed = time.perf_counter() - started
    if any(reply is None for reply in replies):
        raise SystemExit("a channel got no reply; the measurement would be meaningless")
    return elapsed


@dataclasses.dataclass(frozen=True, slots=True)
class Mix:
    """Which personas the channels get, in turn (channel i: personas[i % n]); empty: the default."""

    personas: tuple[str, ...] = ()
    personas_dir: Path | None = None
    check_models: bool = False  # the start-up check (real vLLM: every persona's adapter is served)


async def channels(manager: ConversationManager, names: list[str], mix: Mix) -> list[str]:
    for number, name in enumerate(names):
        if mix.personas:
            await manager.switch_persona("twitch", name, mix.personas[number % len(mix.personas)])
    return names


async def measure(
    base_url: str,
    k: int,
    rounds: int,
    counter: TokenizerCounter,
    max_tokens: int | None,
    *,
    in_turn: bool = True,
    mix: Mix | None = None,
) -> dict[str, float]:
    """Median seconds for one channel, K channels at once, and (``in_turn``) K channels one after another."""
    mix = mix or Mix()
    with tempfile.TemporaryDirectory(prefix="costar-bench-") as data_dir:
        core: dict[str, object] = {"data_dir": data_dir}
        if mix.personas_dir:
            core["personas_dir"] = mix.personas_dir
        settings = load_settings(
            None,
            core=core,
            backend={
                "kind": "openai",
                "base_url": base_url,
                "model": MODEL_NAME,
                "max_concurrency": k,
                "timeout_s": 300,
                "check_models": mix.check_models,
            },
            # K prompts prefilled at once on a CPU can take longer than the default first-chunk limit.
            resilience={"first_chunk_timeout_s": 300.0, "idle_timeout_s": 300.0},
        )
        manager = await build_manager(settings, counter=counter)
        manager.backend = CappedReplies(manager.backend, max_tokens)
        try:
            await manager.backend.start()
            await timed_round(manager, await channels(manager, ["warm-up"], mix))  # first connection and render
            one, together, sequential = [], [], []
            for r in range(rounds):
                one.append(await timed_round(manager, await channels(manager, [f"one-{r}"], mix)))
                many = await channels(manager, [f"k-{r}-{i}" for i in range(k)], mix)
                together.append(await timed_round(manager, many))
                if in_turn:
                    names = await channels(manager, [f"seq-{r}-{i}" for i in range(k)], mix)
                    sequential.append(sum([await timed_round(manager, [name]) for name in names]))
        finally:
            await close_manager(manager)
    medians = {"one": statistics.median(one), "together": statistics.median(together)}
    return medians | ({"in_turn": statistics.median(sequential)} if sequential else {})


async def against_vllm(
    url: str, k: int, rounds: int, max_tokens: int, mix: Mix, counter: TokenizerCounter
) -> dict[str, float]:
    return await measure(url, k, rounds, counter, max_tokens, mix=mix)


async def against_fake(k: int, rounds: int, delay_s: float, counter: TokenizerCounter) -> dict[str, float]:
    async with FakeVllm(MODEL_NAME, delay_s=delay_s) as fake:
        return await measure(fake.base_url, k, rounds, counter, None)


def against_transformers(
    k: int, rounds: int, max_tokens: int, model_dir: Path, counter: TokenizerCounter
) -> dict[str, float]:
    with serve_smollm2(model_dir) as base_url:
        return asyncio.run(measure(base_url, k, rounds, counter, max_tokens, in_turn=False))


def print_row(server: str, k: int, r: dict[str, float]) -> None:
    in_turn = f"{r['in_turn']:>10.2f}" if "in_turn" in r else f"{'-':>10}"
    print(
        f"{server:<34} {k:>2} {r['one']:>8.2f} {r['together']:>10.2f} {in_turn} {r['together'] / r['one']:>7.2f}",
        flush=True,
    )


def run_vllm(args: argparse.Namespace, counter: TokenizerCounter) -> int:
    mix = Mix(tuple(args.mix.split(",")), args.personas, check_models=True)
    result = asyncio.run(against_vllm(args.vllm, args.k, args.rounds, args.cpu_max_tokens, mix, counter))
    print(f"{'server':<34} {'K':>2} {'one (s)':>8} {'K at once':>10} {'K in turn':>10} {'ratio':>7}", flush=True)
    print_row(f"vLLM {args.mix}, {args.cpu_max_tokens} tok", args.k, result)
    ratio = result["together"] / result["one"]
    print(
        f"RESULT vllm_ratio={ratio:.3f} k={args.k} throughput_gain={args.k / ratio:.2f} "
        f"one_s={result['one']:.2f} together_s={result['together']:.2f} in_turn_s={result['in_turn']:.2f}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", type=int, default=4, help="channels at once (default 4 = COSTAR_BACKEND_MAX_CONCURRENCY)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per server; medians are reported")
    parser.add_argument("--delay", type=float, default=1.0, help="the fake server's fixed seconds per request")
    parser.add_argument("--cpu-k", type=int, default=2, help="channels at once against transformers serve (default 2)")
    parser.add_argument(
        "--cpu-max-tokens", type=int, default=16, help="reply cap against transformers serve and --vllm"
    )
    parser.add_argument("--skip-transformers", action="store_true", help="only the fixed-delay server")
    parser.add_argument("--vllm", metavar="URL", help="only this vLLM server (http://HOST:PORT/v1), mixed personas")
    parser.add_argument(
        "--mix", default="pip,captain-brine", help="with --vllm: personas the channels get in turn (comma-separated)"
    )
    parser.add_argument("--personas", type=Path, help="with --vllm: COSTAR_PERSONAS_DIR (cards bound to adapters)")
    args = parser.parse_args(argv)
    require_inputs(parser, {"--personas": args.personas})

    model_dir = ensure_default_model(CoreSettings().cache_dir)
    counter = TokenizerCounter(model_dir / "tokenizer.json")
    # A plain SIGTERM (e.g. from `timeout`) must still run the finally blocks that stop the server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.vllm:
        return run_vllm(args, counter)
    fake = asyncio.run(against_fake(args.k, args.rounds, args.delay, counter))
    print(f"{'server':<34} {'K':>2} {'one (s)':>8} {'K at once':>10} {'K in turn':>10} {'ratio':>7}", flush=True)
    print_row(f"fixed delay {args.delay:g} s (fake vLLM)", args.k, fake)
    if not args.skip_transformers:
        cpu = against_transformers(args.cpu_k, 1, args.cpu_max_tokens, model_dir, counter)
        print_row(f"transformers serve, CPU, {args.cpu_max_tokens} tok", args.cpu_k, cpu)
    print(f"RESULT ratio={fake['together'] / fake['one']:.3f} k={args.k} delay_s={args.delay:g} target=1.25")
    return 0


if __name__ == "__main__":
    sys.exit(main())
