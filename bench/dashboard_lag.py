"""The dashboard in a real browser under a chat flood: update lag, and how fast the mute bites.

A recorded chat is fed through ``manager.hear`` (the real SQLite file, input moderation) at
``--rate`` lines a second while the dashboard is open in headless Chromium (Selenium with
Debian's chromium-driver). The page is not touched: a MutationObserver notes, for each heard line
it shows, the time from the line being stored to the next frame painted after it appeared.
Lines the page skipped as "+N more" are counted, not timed.

Then ``--mutes`` times: a reply streams (scripted backend, 50 ms a chunk), the Mute button is
clicked, and the time from the click to the caption's retraction on the stage is taken (what
the overlay and the voice act on), then it is unmuted.

    python bench/dashboard_lag.py --csv ../shared/data/live-chat-press-briefing.csv --rate 100 --seconds 20

Ends with ``RESULT lag_p50_ms=… lag_p95_ms=… lines=… shown=… more=… mute_p50_ms=… mute_max_ms=…``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.flood import load_events, percentile  # noqa: E402
from bench.inputs import require_inputs  # noqa: E402
from bot.app import build_manager, close_manager  # noqa: E402
from bot.dashboard.server import DashboardServer, dashboard_tokens  # noqa: E402
from engine.backends.scripted import ScriptedBackend  # noqa: E402
from engine.control.room import EVERYWHERE  # noqa: E402
from engine.manager import ConversationManager  # noqa: E402
from engine.prompting.tokens import ApproxTokenCounter  # noqa: E402
from engine.settings import load_settings  # noqa: E402
from engine.stage.cues import Cue, ReplyCue, ReplyState  # noqa: E402
from tests.dashboard_browser import Browser, open_browser  # noqa: E402
from tests.on_stage import answer  # noqa: E402

# Each heard row carries the time it was stored (data-at, seconds); lag is measured at the frame after.
_OBSERVE = """
window.lags = [];
new MutationObserver((changes) => {
  for (const change of changes) for (const row of change.addedNodes) {
    if (!row.dataset || !row.dataset.at) continue;
    const at = Number(row.dataset.at) * 1000;
    requestAnimationFrame(() => window.lags.push(Date.now() - at));
  }
}).observe(document.getElementById("heard"), { childList: true });
"""


async def flood(manager: ConversationManager, csv_path: Path, rate: float, seconds: float) -> int:
    events = [event for _, event in load_events(csv_path, address_every=0)]
    total = min(len(events), int(rate * seconds))
    started = time.perf_counter()
    for number, event in enumerate(events[:total]):
        delay = started + number / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await manager.hear(event)
    return total


async def mute_once(manager: ConversationManager, scripted: ScriptedBackend, browser: Browser) -> float:
    """Milliseconds from the click on Mute to the streaming caption's retraction on the stage."""
    retracted: list[float] = []

    def record(cue: Cue) -> bool:
        if isinstance(cue, ReplyCue) and cue.state is ReplyState.RETRACTED and not retracted:
            retracted.append(time.time() * 1000)
        return False

    scripted.enqueue(["Ribbit. " * 40])
    with manager.stage.subscribe(record):
        replying = asyncio.create_task(answer(manager, "pip, talk to me"))
        while not manager.stage.live():
            await asyncio.sleep(0.01)
        await browser.click("#mute")
        await asyncio.wait_for(replying, 10)
        pressed = await browser.wait_for("return window.mutePressedAt")
    await manager.mute(EVERYWHERE, muted=False)
    await browser.wait_for("return !document.body.classList.contains('muted')")
    return retracted[0] - pressed


async def measure(args: argparse.Namespace, data_dir: Path) -> str:
    settings = load_settings(None, core={"data_dir": data_dir}, dashboard={"port": 0})
    scripted = ScriptedBackend(default="Hello!", chunk_delay_s=0.05)
    manager = await build_manager(settings, backend=scripted, counter=ApproxTokenCounter())
    server = DashboardServer(manager, settings.dashboard, dashboard_tokens(settings))
    await server.start()
    try:
        async with open_browser() as browser:
            await browser.log_in(f"http://127.0.0.1:{server.port}", server.tokens.moderator)
            await browser.js(_OBSERVE)
            lines = await flood(manager, args.csv, args.rate, args.seconds)
            await asyncio.sleep(1.0)  # the last batch
            lags = await browser.js("return window.lags")
            more = await browser.js("return document.getElementById('more').textContent") or "+0 more"
            mutes = [await mute_once(manager, scripted, browser) for _ in range(args.mutes)]
    finally:
        await server.close()
        await close_manager(manager)
    return (
        f"RESULT lag_p50_ms={percentile(lags, 0.5):.0f} lag_p95_ms={percentile(lags, 0.95):.0f} lines={lines}"
        f" shown={len(lags)} more={more.split()[0].lstrip('+')}"
        f" mute_p50_ms={percentile(mutes, 0.5):.0f} mute_max_ms={max(mutes, default=0):.0f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, required=True, help="chat CSV with author, message, published_at")
    parser.add_argument("--rate", type=float, default=100.0, help="chat lines a second")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the flood lasts")
    parser.add_argument("--mutes", type=int, default=10, help="mute presses to time")
    args = parser.parse_args(argv)
    require_inputs(parser, {"--csv": args.csv})
    with tempfile.TemporaryDirectory() as data_dir:
        print(asyncio.run(measure(args, Path(data_dir))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
