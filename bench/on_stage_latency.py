"""On-stage latency: from a chat line to the first caption and the first spoken audio at the overlay.

Replays real chat lines to the character the way the Twitch adapter answers them (``hear`` then
``reply``, no snapshots asked for), with the overlay server running, the voice speaking through
espeak-ng, and a websocket client in place of the OBS browser source. For each reply it takes,
from the moment the line arrives: the first caption cue at the client, the first audio cue (a
synthesised sentence, ready to play), and the finished reply.

    python bench/on_stage_latency.py                              # the embedded SmolLM2 model, 8 replies
    python bench/on_stage_latency.py --backend scripted --replies 20
    python bench/on_stage_latency.py --csv other-chat.csv

The last line is ``RESULT first_caption_p50_ms=… first_audio_p50_ms=… reply_done_p50_ms=…
audio_before_done=… replies=… backend=…``. ``audio_before_done`` is the share of replies whose
first sentence was ready before the model finished the reply.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.inputs import require_inputs  # noqa: E402
from bot.app import build_manager, close_manager  # noqa: E402
from bot.overlay.server import OverlayServer  # noqa: E402
from engine.backends.scripted import ScriptedBackend  # noqa: E402
from engine.events import ChatEvent  # noqa: E402
from engine.manager import ConversationManager  # noqa: E402
from engine.settings import load_settings  # noqa: E402
from engine.voice.speaker import Voice  # noqa: E402
from engine.voice.synth import EspeakSynthesizer  # noqa: E402

DEFAULT_CSV = REPO.parent / "shared" / "data" / "live-chat-press-briefing.csv"
SCRIPTED_REPLY = "Oh, good question! I think the stream is going great so far. Stick around for the boss fight."


@dataclass
class Timings:
    asked_at: float
    caption_at: float | None = None
    audio_at: float | None = None
    done_at: float | None = None


@dataclass
class FeedClock:
    """Arrival time of every cue, as the overlay page would see them: (time, reply id, kind)."""

    seen: list[tuple[float, str, str]] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def note(self, cue: dict[str, Any]) -> None:
        kind = "done" if cue.get("state") in ("done", "retracted") else cue["type"]
        self.seen.append((time.perf_counter(), cue.get("id", ""), kind))
        if kind == "done":
            self.ended.set()

    def first(self, kind: str, after: float) -> float | None:
        """When the first cue of ``kind`` arrived for the first reply that started after ``after``."""
        replies = [cue_id for at, cue_id, seen_kind in self.seen if at > after and seen_kind == "reply"]
        if not replies:
            return None
        return next((at for at, cue_id, seen in self.seen if cue_id == replies[0] and seen == kind), None)


def read_lines(path: Path, count: int) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [
            (row.get("author") or "viewer", " ".join((row.get("message") or "").split()))
            for row in csv.DictReader(handle)
        ]
    return [(author, text) for author, text in rows if 10 <= len(text) <= 200][:count]


async def follow(url: str, clock: FeedClock) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(url, max_msg_size=2**26) as feed:
        async for message in feed:
            clock.note(message.json())


async def ask(manager: ConversationManager, clock: FeedClock, number: int, author: str, text: str) -> Timings:
    event = ChatEvent(
        platform="twitch",
        channel_id="bench",
        author_id=f"id-{author}",
        author_name=author,
        text=f"pip, {text}",
        message_id=f"bench-{number}",
        addresses_bot=True,
    )
    clock.ended.clear()
    timings = Timings(asked_at=time.perf_counter())
    heard = await manager.hear(event)
    if heard.blocked or await manager.reply(heard) is None:
        return timings
    await asyncio.wait_for(clock.ended.wait(), 30)
    await asyncio.sleep(1.0)  # sentences still being synthesised after the text finished
    timings.caption_at = clock.first("reply", timings.asked_at)
    timings.audio_at = clock.first("audio", timings.asked_at)
    timings.done_at = clock.first("done", timings.asked_at)
    return timings


async def run(args: argparse.Namespace) -> list[Timings]:
    with tempfile.TemporaryDirectory(prefix="costar-bench-") as data_dir:
        settings = load_settings(
            None,
            core={"data_dir": Path(data_dir)},
            backend={"kind": "embedded", "timeout_s": 600.0},
            # A busy CPU must slow the figures down, not turn them into failures.
            resilience={"first_chunk_timeout_s": 600.0, "idle_timeout_s": 600.0},
        )
        backend = ScriptedBackend(default=SCRIPTED_REPLY, chunk_delay_s=0.03) if args.backend == "scripted" else None
        manager = await build_manager(settings, backend=backend)
        await manager.backend.start()
        overlay = OverlayServer(manager.stage, {})
        await overlay.start()
        espeak = EspeakSynthesizer()
        voice_task = asyncio.create_task(Voice(manager.stage, lambda persona: espeak, metrics=manager.metrics).run())
        clock = FeedClock()
        feed_task = asyncio.create_task(follow(f"{overlay.base}/overlay/feed", clock))
        await asyncio.sleep(0.2)
        try:
            results = []
            for number, (author, text) in enumerate(read_lines(args.csv, args.replies), start=1):
                results.append(await ask(manager, clock, number, author, text))
                print(describe(results[-1]), flush=True)  # a slow model: each row as soon as it is known
            return results
        finally:
            feed_task.cancel()
            voice_task.cancel()
            await overlay.close()
            await manager.backend.aclose()
            await close_manager(manager)


def describe(timings: Timings) -> str:
    if timings.done_at is None:
        return "not answered (moderation or an empty reply)"
    moments = (("caption", timings.caption_at), ("audio", timings.audio_at), ("done", timings.done_at))
    return "  ".join(f"{name} {1000 * (at - timings.asked_at):7.0f} ms" for name, at in moments if at)


def milliseconds(values: list[float]) -> float:
    return 1000 * statistics.median(values) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="chat CSV with author and message columns")
    parser.add_argument("--replies", type=int, default=8, help="chat lines asked (default 8)")
    parser.add_argument("--backend", choices=["embedded", "scripted"], default="embedded")
    args = parser.parse_args(argv)
    require_inputs(parser, {"--csv": args.csv})
    results = asyncio.run(run(args))
    answered = [r for r in results if r.done_at is not None]
    caption = [r.caption_at - r.asked_at for r in answered if r.caption_at]
    audio = [r.audio_at - r.asked_at for r in answered if r.audio_at]
    done = [r.done_at - r.asked_at for r in answered if r.done_at]
    early = sum(1 for r in answered if r.audio_at and r.done_at and r.audio_at < r.done_at)
    print(
        f"RESULT first_caption_p50_ms={milliseconds(caption):.0f} first_audio_p50_ms={milliseconds(audio):.0f} "
        f"reply_done_p50_ms={milliseconds(done):.0f} audio_before_done={early / max(1, len(answered)):.2f} "
        f"replies={len(answered)} backend={args.backend}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
