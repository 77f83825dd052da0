"""After a persona switch, does the new character take the old one's name? Counted on the real model.

Each of ``--channels`` channels first has Captain Brine as its co-host: a viewer greets him and asks
who he is, and Brine answers with lines that name himself (his card's greeting and example lines,
said through the manager as a fixed line is, so they are stored as Brine's own replies). Then a
moderator switches the channel to Pip, and viewers go on chatting: ``who are you?`` first, then
lines from a recorded live chat (``--csv``), each addressed to the character. Pip answers through
the real ConversationManager on llama.cpp with its shipped LoRA adapter and its card's sampling.

A reply *claims* the old name when it says "I'm Brine", "Captain Brine here", "this is Captain
Brine", "call me Brine", "my name is Brine", or opens with "Captain Brine:"; near-misses of the
name ("Captain Brink") count too (tests/speaker_claims.py). Replies that merely mention the name
are counted beside it.
Target: claims = 0 of 20 replies.

    python bench/persona_bleed.py --csv ../shared/data/live-chat-press-briefing.csv
    python bench/persona_bleed.py --csv chat.csv --channels 5 --replies-per-channel 4 --threads 2
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.inputs import require_inputs  # noqa: E402
from bot.app import build_manager, close_manager  # noqa: E402
from engine.events import ChatEvent, Reply  # noqa: E402
from engine.manager import ConversationManager  # noqa: E402
from engine.prompting.tokens import TokenizerCounter  # noqa: E402
from engine.serving.model_store import ensure_default_model  # noqa: E402
from engine.settings import CoreSettings, load_settings  # noqa: E402
from tests.speaker_claims import claims_name, mentions_name  # noqa: E402

OLD, NEW = "captain-brine", "pip"
# What the old character said before the switch: its card's own lines, naming itself.
OLD_LINES = (
    ("hi captain!", "Ahoy, crew! Captain Brine on deck. Stow your snacks and man the chat."),
    (
        "who are you?",
        "Captain Brine, scourge of the asteroid belt, retired. Now I steer this stream and its fine crew.",
    ),
    ("tell us about your ship", "My ship is the Marauder, crew! Forty years in the belt and she never sank."),
)


def chat_rows(path: Path, count: int) -> list[tuple[str, str]]:
    """(author, line) pairs of ordinary chat, skipping empty and very short lines."""
    rows: list[tuple[str, str]] = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            text = (row.get("message") or "").strip()
            if len(text) >= 12 and row.get("author"):
                rows.append((row["author"], text))
            if len(rows) >= count:
                break
    return rows


async def viewer_says(manager: ConversationManager, channel: str, author: str, text: str, number: int):
    event = ChatEvent("youtube", channel, author, author, text, f"{channel}-{number}", addresses_bot=True)
    return await manager.hear(event)


async def reply_to(manager: ConversationManager, heard) -> str | None:
    reply = None
    async for item in manager.generate(heard):
        if isinstance(item, Reply):
            reply = item
    return reply.text if reply is not None else None


async def one_channel(
    manager: ConversationManager, channel: str, chat: list[tuple[str, str]], wanted: int
) -> list[str]:
    """Brine hosts, then Pip answers until ``wanted`` replies (moderation may withhold some lines)."""
    await manager.switch_persona("youtube", channel, OLD)
    for number, (asked, answer) in enumerate(OLD_LINES):
        await manager.say(await viewer_says(manager, channel, "deckhand_dee", asked, number), answer)
    await manager.switch_persona("youtube", channel, NEW)
    replies: list[str] = []
    lines = [("deckhand_dee", "who are you?"), *chat]
    for number, (author, text) in enumerate(lines, start=len(OLD_LINES)):
        heard = await viewer_says(manager, channel, author, text, number)
        reply = None if heard.blocked else await reply_to(manager, heard)
        if reply:
            replies.append(reply)
        if len(replies) == wanted:
            break
    return replies


async def measure(args: argparse.Namespace) -> list[str]:
    counter = TokenizerCounter(ensure_default_model(CoreSettings().cache_dir) / "tokenizer.json")
    per_channel = 3 * args.replies_per_channel  # room for lines moderation withholds
    chat = chat_rows(args.csv, args.channels * per_channel)
    replies: list[str] = []
    with tempfile.TemporaryDirectory(prefix="costar-bleed-") as data_dir:
        settings = load_settings(
            None,
            core={"data_dir": data_dir},
            backend={"kind": "llamacpp", "threads": args.threads, "seed": args.seed, "timeout_s": 600.0},
            resilience={"first_chunk_timeout_s": 600.0, "idle_timeout_s": 600.0},  # a busy machine is slow
        )
        manager = await build_manager(settings, counter=counter)
        try:
            await manager.backend.start()
            for index in range(args.channels):
                rows = chat[index * per_channel : (index + 1) * per_channel]
                replies += await one_channel(manager, f"bleed-{index}", rows, args.replies_per_channel)
        finally:
            await close_manager(manager)
    return replies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, required=True, help="chat CSV (video_id, author, message, ...)")
    parser.add_argument("--channels", type=int, default=5, help="channels, each switched once (default 5)")
    parser.add_argument("--replies-per-channel", type=int, default=4, help="replies after the switch (default 4)")
    parser.add_argument("--threads", type=int, default=2, help="COSTAR_BACKEND_THREADS (default 2)")
    parser.add_argument("--seed", type=int, default=7, help="sampling seed (default 7)")
    parser.add_argument("--show", action="store_true", help="print every reply")
    args = parser.parse_args(argv)
    require_inputs(parser, {"--csv": args.csv})
    replies = asyncio.run(measure(args))
    old_name = "Captain Brine"
    claims = [reply for reply in replies if claims_name(reply, old_name)]
    mentions = [reply for reply in replies if mentions_name(reply, old_name)]
    for reply in replies if args.show else claims:
        print(("CLAIM " if reply in claims else "      ") + reply.replace("\n", " "))
    print(
        f"RESULT replies={len(replies)} claims_old_name={len(claims)} mentions_old_name={len(mentions)} target=claims==0"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
