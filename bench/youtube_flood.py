"""Replay a recorded YouTube live chat through the YouTube adapter and a local fake YouTube Data API.

The recorded chat (CSV: video_id, author, message, published_at) is posted into the fake
(tests/fake_youtube.py) at its recorded pace times ``--speed``; the real adapter reads it with the
real google-api-python-client, takes every line through the chat session (real SQLite file, scripted
replies) and answers through ``liveChatMessages.insert`` under the daily quota plan. The bot's clock
runs ``--speed`` times faster too, so the quota arithmetic (one reply every ``send_every_s``, one poll
every ``poll_every_s`` at most) applies in stream time. Every ``--address-every``-th line is rewritten
to name the character.

    python bench/youtube_flood.py --csv ../shared/data/live-chat-press-briefing.csv --speed 100
    python bench/youtube_flood.py --csv chat.csv --speed 1 --limit 300

The last line is ``RESULT lines=… stored=… sends=… send_units=… send_share_units=… read_units=…
polls=… addressed=… answered=… wall_s=…``; the bench exits 1 when a line was not stored exactly once
or a reply went past the sending share.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from google.oauth2.credentials import Credentials

# Run as a script: the project's packages, and the fake YouTube that lives with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.inputs import require_inputs
from bot.app import build_manager, close_manager
from bot.youtube.adapter import YouTubeAdapter
from bot.youtube.quota import INSERT_COST
from bot.youtube.settings import YouTubeSettings
from engine.backends.scripted import ScriptedBackend
from engine.base.clock import ScaledClock
from engine.prompting.tokens import ApproxTokenCounter
from engine.settings import Settings, load_settings
from memory.export import count_viewer_lines
from tests.fake_youtube import FakeYouTube, author, text_message

__all__ = ["ReplayResult", "main", "replay_chat"]


@dataclass
class ReplayResult:
    lines: int
    stored: int
    sends: int
    send_units: int
    send_share_units: int
    read_units: int
    polls: int
    addressed: int
    answered: int
    wall_s: float


def load_rows(csv_path: Path, limit: int | None) -> list[tuple[float, str, str]]:
    """(seconds after the first line, author, message) per row."""
    with csv_path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[:limit]
    start = datetime.fromisoformat(rows[0]["published_at"])
    return [
        ((datetime.fromisoformat(row["published_at"]) - start).total_seconds(), row["author"], row["message"])
        for row in rows
    ]


async def _feed(fake: FakeYouTube, rows: list[tuple[float, str, str]], speed: float, address_every: int) -> int:
    """Post the rows into the fake chat at their pace; how many name the character."""
    started = time.perf_counter()
    addressed = 0
    for index, (due_s, name, text) in enumerate(rows):
        wait_s = due_s / speed - (time.perf_counter() - started)
        if wait_s > 0:
            await asyncio.sleep(wait_s)
        if address_every > 0 and index % address_every == 0:
            text, addressed = f"Pip, {text}", addressed + 1
        fake.post(text_message(f"yt-{index}", author(f"UC-{name}", name), text))
    return addressed


async def replay_chat(
    csv_path: Path,
    settings: Settings,
    fake: FakeYouTube,
    *,
    speed: float,
    limit: int | None = None,
    quota_units: int = 10_000,
    address_every: int = 6,
    tmp_path: Path,
) -> ReplayResult:
    rows = load_rows(csv_path, limit)
    stream_hours = max(rows[-1][0], 1.0) / 3600
    youtube = YouTubeSettings.model_validate(
        {
            "quota_units_per_day": quota_units,
            "stream_hours": stream_hours,
            "quota_file": tmp_path / "youtube_quota.json",
            "read": "poll",  # the bench measures polling at the recorded pace (the fake's list)
        }
    )
    fake.polling_interval_ms = 5000  # stream time: the bot's clock runs ``speed`` times faster
    fake.page_size = 2000
    manager = await build_manager(
        settings, backend=ScriptedBackend([f"answer {n}" for n in range(100_000)]), counter=ApproxTokenCounter()
    )
    started = time.perf_counter()
    try:
        adapter = YouTubeAdapter(
            settings,
            manager,
            youtube=youtube,
            api_endpoint=fake.url,
            credentials=Credentials(token="bench-access"),
            clock=ScaledClock(speed),
        )
        reading = asyncio.create_task(adapter.start())
        addressed = await _feed(fake, rows, speed, address_every)
        fake.offline = True  # the next poll past the last line carries offlineAt: the adapter ends
        await reading
    finally:
        await close_manager(manager)
    return ReplayResult(
        lines=len(rows),
        stored=count_viewer_lines(settings.db_path, "youtube"),
        sends=len(fake.inserted),
        send_units=adapter.ledger.send_units,
        send_share_units=adapter.plan.send_units,
        read_units=adapter.ledger.read_units,
        polls=adapter.polls,
        addressed=addressed,
        answered=len(fake.inserted),
        wall_s=time.perf_counter() - started,
    )


async def _run(args: argparse.Namespace, data_dir: Path) -> ReplayResult:
    settings = load_settings(None, core={"data_dir": data_dir}, memory={"embeddings": "off"})
    fake = await FakeYouTube().start()
    try:
        return await replay_chat(
            args.csv,
            settings,
            fake,
            speed=args.speed,
            limit=args.limit,
            quota_units=args.quota_units,
            address_every=args.address_every,
            tmp_path=data_dir,
        )
    finally:
        await fake.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, required=True, help="chat CSV with author, message, published_at")
    parser.add_argument("--speed", type=float, default=100.0, help="replay this many times faster than recorded")
    parser.add_argument("--limit", type=int, help="replay at most this many lines")
    parser.add_argument("--quota-units", type=int, default=10_000, help="YOUTUBE_QUOTA_UNITS_PER_DAY")
    parser.add_argument("--address-every", type=int, default=6, help="rewrite every Nth line to name the character")
    args = parser.parse_args(argv)
    require_inputs(parser, {"--csv": args.csv})
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory() as scratch:
        result = asyncio.run(_run(args, Path(scratch)))
    print(
        f"RESULT lines={result.lines} stored={result.stored} sends={result.sends} send_units={result.send_units}"
        f" send_share_units={result.send_share_units} read_units={result.read_units} polls={result.polls}"
        f" addressed={result.addressed} answered={result.answered} wall_s={result.wall_s:.1f}"
    )
    within = result.sends * INSERT_COST <= result.send_share_units
    return 0 if result.stored == result.lines and within else 1


if __name__ == "__main__":
    sys.exit(main())
