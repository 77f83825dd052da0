"""Tics: the 3-grams that come back across many of one character's replies to varied chat.

Replays a recorded live chat (CSV: video_id, author, message, published_at) into one channel of
the real ConversationManager on llama.cpp, with the persona's card as shipped (its LoRA adapter,
temperature and repetition penalty: the production sampling), every ``--every``-th line addressed
to the character, until ``--replies`` replies are stored. A 3-gram's *share* is the fraction of
replies that contain it at least once (words lower-cased, punctuation dropped). Target: no 3-gram
in more than 10% of 200 replies.

``--repeat-penalty`` and ``--recent-words-penalty`` override the card's ``style`` values, so that
the settings are chosen by measurement (docs/finetuning.md#tics).

    python bench/reply_ngrams.py --csv ../shared/data/live-chat-press-briefing.csv
    python bench/reply_ngrams.py --csv chat.csv --replies 60 --repeat-penalty 1.2 --top 15
    # in parallel parts over different stretches of the chat, then counted together:
    python bench/reply_ngrams.py --csv chat.csv --replies 50 --skip 2000 --save part2.jsonl
    python bench/reply_ngrams.py --csv chat.csv --replies 200 --load part*.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
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

_WORD = re.compile(r"[a-z0-9']+")


def ngram_shares(replies: Sequence[str], n: int = 3) -> list[tuple[str, float]]:
    """Each n-gram with the share of replies containing it, most shared first."""
    present: Counter[str] = Counter()
    for reply in replies:
        words = _WORD.findall(reply.lower())
        present.update({" ".join(words[i : i + n]) for i in range(len(words) - n + 1)})
    return [(gram, count / max(1, len(replies))) for gram, count in present.most_common()]


def chat_events(path: Path, every: int, channel: str, skip: int = 0) -> Iterator[ChatEvent]:
    with path.open(newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.DictReader(handle)):
            if number < skip:
                continue
            text, author = (row.get("message") or "").strip(), row.get("author") or ""
            if text and author:
                yield ChatEvent(
                    "youtube",
                    channel,
                    author,
                    author,
                    text,
                    f"m{number}",
                    addresses_bot=addressed_to_bot(number, every),
                )


def addressed_to_bot(number: int, every: int) -> bool:
    return number % every == every - 1


def with_sampling(manager: ConversationManager, persona_id: str, args: argparse.Namespace) -> None:
    """The card's repetition penalties replaced by the ones under test."""
    card = manager.personas.cards[persona_id]
    changes = {
        key: value
        for key, value in (
            ("repetition_penalty", args.repeat_penalty),
            ("recent_words_penalty", args.recent_words_penalty),
            ("repeated_phrase_penalty", args.repeated_phrase_penalty),
        )
        if value is not None
    }
    if changes:
        manager.personas.cards[persona_id] = card.model_copy(update={"style": card.style.model_copy(update=changes)})


async def collect(args: argparse.Namespace) -> list[str]:
    counter = TokenizerCounter(ensure_default_model(CoreSettings().cache_dir) / "tokenizer.json")
    backend: dict[str, object] = {"kind": "llamacpp", "threads": args.threads, "seed": args.seed, "timeout_s": 600.0}
    replies: list[str] = []
    with tempfile.TemporaryDirectory(prefix="costar-ngrams-") as data_dir:
        # A trim re-reads a whole window: on a busy 2-core machine that can take longer than the
        # default first-chunk deadline, which would end the replay.
        patience = {"first_chunk_timeout_s": 600.0, "idle_timeout_s": 600.0}
        settings = load_settings(
            None,
            core={"data_dir": data_dir, "default_persona": args.persona},
            backend=backend,
            resilience=patience,
        )
        manager = await build_manager(settings, counter=counter)
        try:
            with_sampling(manager, args.persona, args)
            for event in chat_events(args.csv, args.every, "tics", args.skip):
                text = await answer(manager, event)
                if text:
                    replies.append(text)
                    if args.save:  # kept as they come: a long replay stopped early is not lost
                        with args.save.open("a", encoding="utf-8") as saved:
                            saved.write(json.dumps(text) + "\n")
                    if len(replies) % 20 == 0:
                        print(f"  {len(replies)} replies", file=sys.stderr)
                if len(replies) >= args.replies:
                    break
        finally:
            await close_manager(manager)
    return replies


async def answer(manager: ConversationManager, event: ChatEvent) -> str | None:
    heard = await manager.hear(event)
    if not event.addresses_bot or heard.blocked:
        return None
    reply = None
    async for item in manager.generate(heard):
        if isinstance(item, Reply):
            reply = item
    return reply.text if reply is not None else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, required=True, help="chat CSV (video_id, author, message, ...)")
    parser.add_argument("--replies", type=int, default=200, help="replies to collect (default 200)")
    parser.add_argument("--every", type=int, default=2, help="every Nth line addresses the character (default 2)")
    parser.add_argument("--persona", default="pip", help="persona id (default pip)")
    parser.add_argument("--threads", type=int, default=2, help="COSTAR_BACKEND_THREADS (default 2)")
    parser.add_argument("--seed", type=int, default=7, help="sampling seed (default 7)")
    parser.add_argument("--repeat-penalty", type=float, help="instead of the card's style.repetition_penalty")
    parser.add_argument("--recent-words-penalty", type=float, help="instead of the card's style.recent_words_penalty")
    parser.add_argument(
        "--repeated-phrase-penalty", type=float, help="instead of the card's style.repeated_phrase_penalty"
    )
    parser.add_argument("--skip", type=int, default=0, help="start at this line of the CSV (default 0)")
    parser.add_argument("--save", type=Path, help="append each reply to this file (JSON lines) as it comes")
    parser.add_argument(
        "--load", type=Path, nargs="+", help="count the replies saved in these files instead of generating"
    )
    parser.add_argument("--top", type=int, default=10, help="3-grams to list (default 10)")
    parser.add_argument("--show", action="store_true", help="print every reply")
    args = parser.parse_args(argv)
    require_inputs(parser, {"--csv": args.csv})
    if args.load:
        replies = [json.loads(line) for path in args.load for line in path.read_text(encoding="utf-8").splitlines()]
        replies = replies[: args.replies]
    else:
        replies = asyncio.run(collect(args))
    if args.show:
        print("\n".join(reply.replace("\n", " ") for reply in replies))
    shares = ngram_shares(replies)
    for gram, share in shares[: args.top]:
        print(f"{share:6.1%}  {gram}")
    top_gram, top_share = shares[0] if shares else ("", 0.0)
    honored = sum("honored" in reply.lower() for reply in replies) / max(1, len(replies))
    print(
        f'RESULT replies={len(replies)} top_3gram_share={top_share:.3f} top_3gram="{top_gram}" '
        f"honored_share={honored:.3f} target=top_3gram_share<=0.10"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
