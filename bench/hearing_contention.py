"""What hearing costs the reply model: threads taken, and reply latency while the host is transcribed.

Replies to the same chat lines are timed twice with the default CPU model: alone, then while
the packaged Moonshine tiny-en model transcribes speech back to back on its worker thread (the
worst case: the host never stops talking). Also counts the threads the recognizer starts.

    .venv/bin/python bench/hearing_contention.py                  # 10 replies each way
    .venv/bin/python bench/hearing_contention.py --replies 20

The last line is ``RESULT reply_p50_s_alone=… reply_p50_s_hearing=… first_token_p50_s_alone=…
first_token_p50_s_hearing=… recognizer_threads=… cores=…``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.inputs import require_inputs  # noqa: E402
from bot.app import build_manager, close_manager  # noqa: E402
from engine.events import ChatEvent, Reply  # noqa: E402
from engine.hearing.audio import Samples  # noqa: E402
from engine.hearing.recognizer import MoonshineRecognizer  # noqa: E402
from engine.manager import ConversationManager  # noqa: E402
from engine.settings import load_settings  # noqa: E402
from tests.hearing_speech import SENTENCES, espeak_installed, sentences, speak  # noqa: E402

LINES = [
    "pip what game should we play next?",
    "pip do you like boss fights?",
    "pip tell me something about dragons",
    "pip what is your favourite snack?",
]


def thread_count() -> int:
    return len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else threading.active_count()


async def timed_replies(manager: ConversationManager, count: int, tag: str) -> tuple[list[float], list[float]]:
    whole, first = [], []
    for number in range(count):
        text = LINES[number % len(LINES)]
        heard = await manager.hear(
            ChatEvent("console", f"bench-{tag}", "viewer", "viewer", text, message_id=f"{tag}{number}",
                      addresses_bot=True)
        )  # fmt: skip
        started, first_at = time.perf_counter(), None
        async for item in manager.generate(heard):
            if first_at is None:
                first_at = time.perf_counter()
            if isinstance(item, Reply):
                break
        whole.append(time.perf_counter() - started)
        first.append((first_at or time.perf_counter()) - started)
    return whole, first


def keep_transcribing(
    samples: Samples, recognizer: MoonshineRecognizer, stop: threading.Event, peak: list[int]
) -> None:
    while not stop.is_set():
        recognizer.transcribe(samples)
        peak.append(thread_count())


async def run(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory(prefix="costar-bench-") as data_dir:
        settings = load_settings(
            None,
            core={"data_dir": Path(data_dir)},
            backend={"timeout_s": 600.0},
            resilience={"first_chunk_timeout_s": 600.0, "idle_timeout_s": 600.0},
        )
        manager = await build_manager(settings)
        await manager.backend.start()
        try:
            await timed_replies(manager, 2, "warm")
            alone, alone_first = await timed_replies(manager, args.replies, "alone")
            before = thread_count()
            recognizer = await asyncio.to_thread(MoonshineRecognizer)
            stop, peak = threading.Event(), [thread_count()]
            samples = speak(" ".join(sentence.text for sentence in sentences(args.sentences)[:4]))
            worker = threading.Thread(target=keep_transcribing, args=(samples, recognizer, stop, peak))
            worker.start()
            try:
                hearing, hearing_first = await timed_replies(manager, args.replies, "hearing")
            finally:
                stop.set()
                await asyncio.to_thread(worker.join)
        finally:
            await manager.backend.aclose()
            await close_manager(manager)
    return (
        f"RESULT reply_p50_s_alone={statistics.median(alone):.2f} reply_p50_s_hearing={statistics.median(hearing):.2f}"
        f" first_token_p50_s_alone={statistics.median(alone_first):.2f}"
        f" first_token_p50_s_hearing={statistics.median(hearing_first):.2f}"
        f" recognizer_threads={max(peak) - before} cores={os.cpu_count()} backend={settings.backend.kind}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replies", type=int, default=10)
    parser.add_argument("--sentences", type=Path, default=SENTENCES, help="the host's speech: its first four lines")
    args = parser.parse_args(argv)
    require_inputs(parser, {"--sentences": args.sentences})
    if not espeak_installed():
        print("missing input: espeak-ng is not installed (apt-get install espeak-ng)", file=sys.stderr)
        return 2
    print(asyncio.run(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
