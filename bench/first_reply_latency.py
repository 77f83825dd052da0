"""The first reply: after a cold start, after a warm restart, and after a persona switch.

Runs the real ConversationManager on llama.cpp (the shipped cards: Pip with its LoRA adapter,
Captain Brine on the base model) the way ``costar run`` starts: build the manager, start the
backend (load the model), warm the console channel (as the console adapter does at start), and
then a viewer's line arrives at once (``printf 'hi pip\\n' | costar run``). The latency is from
the line heard to the reply stored; start-up (manager, model load) is reported beside it, and so
are the prompt tokens each first reply had to evaluate itself (what load on a shared machine
cannot change: at SmolLM2's 125-145 prompt tokens/s per thread they are most of a reply's time).

- cold start: an empty folder of saved prompt states (``llamacpp-states`` in the cache dir): the
  system prompt is evaluated while the first line waits, and saved;
- warm restart: the same folder, a new process-like start (new manager, new model): the system
  prompt's state is loaded from disk;
- switch: in a running bot, a moderator switches the channel to the other persona and a line
  arrives at once, ``--switches`` times back and forth (the first switch to a persona whose prompt
  was never saved evaluates it; later ones load it).

Each start uses a temporary cache folder that links the real one's converted models and adapters,
so only the saved states differ. Targets (2-core machine): warm restart and switch p50 <= 2.0 s.

    python bench/first_reply_latency.py --csv ../shared/data/live-chat-press-briefing.csv
    python bench/first_reply_latency.py --csv chat.csv --starts 3 --switches 6 --threads 1
"""

from __future__ import annotations

import argparse
import asyncio
import csv
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

PLATFORM, CHANNEL = "console", "local"
PERSONAS = ("pip", "captain-brine")


def chat_lines(path: Path, count: int) -> list[str]:
    lines: list[str] = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            text = (row.get("message") or "").strip()
            if 12 <= len(text) <= 200:
                lines.append(text)
            if len(lines) >= count:
                break
    return lines


def cache_folder(parent: Path) -> Path:
    """A cache dir with the real converted model and adapters, and its own saved states."""
    real = CoreSettings().cache_dir
    folder = parent / "cache"
    folder.mkdir(exist_ok=True)
    for shared in ("models", "llamacpp-adapters"):
        if (real / shared).is_dir() and not (folder / shared).exists():
            (folder / shared).symlink_to(real / shared)
    return folder


class Lines:
    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.sent = 0

    def next_event(self) -> ChatEvent:
        text = self.texts[self.sent % len(self.texts)]
        self.sent += 1
        return ChatEvent(PLATFORM, CHANNEL, "you", "you", text, f"line-{self.sent}", addresses_bot=True)


async def timed_reply(manager: ConversationManager, lines: Lines) -> tuple[float, int]:
    """Seconds from the line heard to the reply stored, and the prompt tokens the reply evaluated
    itself (its prompt less what the context already held: the load-independent part)."""
    started = time.perf_counter()
    for _ in range(5):  # moderation may withhold a press-briefing line: the next one is timed
        reply = await manager.handle(lines.next_event())
        if reply is not None:
            usage = reply.usage
            evaluated = (usage.prompt_tokens or 0) - (usage.cached_prompt_tokens or 0) if usage else -1
            return time.perf_counter() - started, evaluated
        started = time.perf_counter()
    raise RuntimeError("five lines in a row got no reply")


async def start(cache: Path, data: Path, args: argparse.Namespace, counter) -> tuple[ConversationManager, float]:
    began = time.perf_counter()
    settings = load_settings(
        None,
        core={"data_dir": data, "cache_dir": cache},
        backend={"kind": "llamacpp", "threads": args.threads, "seed": 7, "timeout_s": 600.0},
        resilience={"first_chunk_timeout_s": 600.0, "idle_timeout_s": 600.0},  # a busy machine is slow, not down
    )
    manager = await build_manager(settings, counter=counter)
    await manager.backend.start()
    manager.warm(PLATFORM, CHANNEL)  # what the console adapter does first
    return manager, time.perf_counter() - began


async def measure(args: argparse.Namespace) -> dict[str, list[float]]:
    counter = TokenizerCounter(ensure_default_model(CoreSettings().cache_dir) / "tokenizer.json")
    lines = Lines(chat_lines(args.csv, 64))
    figures: dict[str, list[float]] = {"startup": [], "cold": [], "warm_restart": [], "switch": []}
    evaluated: dict[str, list[float]] = {"cold": [], "warm_restart": [], "switch": []}
    for _ in range(args.starts):
        with tempfile.TemporaryDirectory(prefix="costar-first-reply-") as folder:
            cache = cache_folder(Path(folder))
            for kind in ("cold", "warm_restart"):  # the same bot started twice: its memory is kept
                manager, startup = await start(cache, Path(folder) / "data", args, counter)
                figures["startup"].append(startup)
                try:
                    seconds, tokens = await timed_reply(manager, lines)
                    figures[kind].append(seconds)
                    evaluated[kind].append(tokens)
                    if kind == "warm_restart" and not figures["switch"]:
                        for seconds, tokens in await switches(manager, lines, args.switches):
                            figures["switch"].append(seconds)
                            evaluated["switch"].append(tokens)
                finally:
                    await close_manager(manager)
        print(f"  start {len(figures['cold'])}/{args.starts} done", file=sys.stderr)
    return figures | {f"{kind} tokens": values for kind, values in evaluated.items()}


async def switches(manager: ConversationManager, lines: Lines, count: int) -> list[tuple[float, int]]:
    latencies = []
    for number in range(count):
        await manager.switch_persona(PLATFORM, CHANNEL, PERSONAS[(number + 1) % 2])  # warms the channel
        latencies.append(await timed_reply(manager, lines))
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, required=True, help="chat CSV the lines come from (message column)")
    parser.add_argument("--starts", type=int, default=3, help="cold starts, each followed by a warm restart")
    parser.add_argument("--switches", type=int, default=6, help="persona switches in the first warm run")
    parser.add_argument("--threads", type=int, default=2, help="COSTAR_BACKEND_THREADS (default 2)")
    args = parser.parse_args(argv)
    require_inputs(parser, {"--csv": args.csv})
    figures = asyncio.run(measure(args))
    for kind, values in figures.items():
        print(
            f"{kind:>19}: " + " ".join(f"{value:.2f}" if "tokens" not in kind else f"{value:.0f}" for value in values)
        )
    p50 = {kind: statistics.median(values) for kind, values in figures.items() if values}
    print(
        f"RESULT cold_p50_s={p50['cold']:.2f} warm_restart_p50_s={p50['warm_restart']:.2f} "
        f"switch_p50_s={p50['switch']:.2f} startup_p50_s={p50['startup']:.2f} "
        f"cold_evaluated_tokens_p50={p50['cold tokens']:.0f} warm_restart_evaluated_tokens_p50="
        f"{p50['warm_restart tokens']:.0f} switch_evaluated_tokens_p50={p50['switch tokens']:.0f} threads={args.threads} "
        "targets=warm_restart<=2.0,switch<=2.0"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
