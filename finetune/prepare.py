"""Convert and clean dialogue data into costar's conversational JSONL, with a held-out split.

    python -m finetune.prepare --kind personachat --source Cynaptics/persona-chat --limit 2000 \\
        --card personas/cards/pip.yaml --out data/finetune/pip-personachat
    python -m finetune.prepare --kind hpd --source en_train_set.json --character Harry --out data/hpd
    python -m finetune.prepare --kind memory_db --source data/costar.sqlite3 --card personas/cards/pip.yaml \\
        --approved-ids approved.txt --out data/pip-chat

Writes ``OUT/train.jsonl`` and ``OUT/heldout.jsonl`` and prints what cleaning dropped.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from pathlib import Path

from finetune.clean import CleanOptions, clean_conversations
from finetune.converters import CONVERTERS, ConvertContext, convert
from finetune.converters.chatlogs import ChatLogOptions
from finetune.data import Conversation, count_turns, write_jsonl
from finetune.errors import FinetuneError
from finetune.persona import DEFAULT_CARD, load_card

__all__ = ["main", "split_heldout"]


def split_heldout(
    conversations: list[Conversation], share: float, seed: int
) -> tuple[list[Conversation], list[Conversation]]:
    shuffled = list(conversations)
    random.Random(seed).shuffle(shuffled)
    held = max(1, round(len(shuffled) * share)) if share > 0 and len(shuffled) > 1 else 0
    return shuffled[held:], shuffled[:held]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m finetune.prepare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kind", required=True, choices=[*CONVERTERS, "memory_db"], help="the source's format")
    parser.add_argument(
        "--source", required=True, help="a local file (.jsonl .json .csv .parquet .sqlite3) or a Hub dataset name"
    )
    parser.add_argument("--out", required=True, type=Path, help="folder for train.jsonl and heldout.jsonl")
    parser.add_argument("--card", type=Path, default=DEFAULT_CARD, help="persona card the system turn is rendered from")
    parser.add_argument("--character", help="the speaker who becomes the assistant (HPD, chat logs)")
    parser.add_argument("--split", default="train", help="Hub split to load")
    parser.add_argument("--limit", type=int, help="read at most this many rows")
    parser.add_argument("--heldout", type=float, default=0.1, help="share of conversations held out for evaluation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--emoji", choices=["strip", "demojize", "keep"], default="strip", help="emoji policy")
    parser.add_argument(
        "--keep-personal-data", action="store_true", help="do not scrub e-mail addresses and phone numbers"
    )
    parser.add_argument(
        "--approved-ids",
        type=Path,
        help="memory_db/chatlog: file of approved message ids; other character lines are dropped",
    )
    return parser


def _approved(path: Path | None) -> set[int] | None:
    if path is None:
        return None
    return {int(token) for token in path.read_text(encoding="utf-8").split() if token.strip().isdigit()}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        context = ConvertContext(card=load_card(args.card), character=args.character)
        approved = _approved(args.approved_ids)
        conversations = convert(
            args.kind,
            args.source,
            context,
            split=args.split,
            limit=args.limit,
            chatlog_options=ChatLogOptions(approved_only=approved is not None),
            approved_ids=approved,
        )
    except FinetuneError as exc:
        raise SystemExit(f"error: {exc}") from None
    options = CleanOptions(emoji_policy=args.emoji, scrub_personal_data=not args.keep_personal_data)
    cleaned, report = clean_conversations(conversations, options)
    train, heldout = split_heldout(cleaned, args.heldout, args.seed)
    write_jsonl(train, args.out / "train.jsonl")
    write_jsonl(heldout, args.out / "heldout.jsonl")
    print(report.summary())
    print(f"train: {count_turns(train)}  heldout: {count_turns(heldout)}  → {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
