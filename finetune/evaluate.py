"""Evaluate the base model and adapters on held-out conversations, measured like the papers.

For every model configuration (the base model, then each adapter on it):

- **perplexity** on the character's turns only (the same mask as training);
- **BLEU**, **chrF** (sacrebleu) and **METEOR** (NLTK, when WordNet is installed) of greedy
  replies against the character's true replies, and **distinct-1/2** of those replies;
- **MC accuracy**: the Yothalia-style persona test — the true reply against three replies other
  characters gave (the conversation's ``distractors``, else other conversations' replies), the
  model picks the one with the highest mean token log-likelihood.

    python -m finetune.evaluate --adapter lora=outputs/adapters/pip-lora \\
        --adapter prompt-tuning=outputs/adapters/pip-prompt-tuning --out reports/finetune

Prints the Markdown table and writes ``report.md`` (the table, then ten held-out prompts with
every configuration's reply next to the true one), ``report.json`` and ``report.png`` to ``--out``.
``--include`` adds the rows of an earlier ``report.json`` on the same held-out set, so the base
model can be evaluated while the adapters are still training.

With ``--cards`` (a folder or card files, repeatable) it measures each character on its own and
averages over characters (:mod:`finetune.per_character`): held-out perplexity and 1-of-4 accuracy
from ``--data`` (conversations whose ``persona`` is the card's id), distinct-1/2 and the
character-break rate of greedy (temperature 0) replies to the fixed probe set (:mod:`finetune.probes`),
for the base model, each ``--adapter`` and the adapter a card binds itself (``own``):

    python -m finetune.evaluate --cards finetune/data/persona/cards --only-in-data --data finetune/data/persona/heldout.jsonl \\
        --adapter persona=personas/adapters/costar-persona --per-character 6 --threads 1 --out outputs/eval/persona
    python -m finetune.evaluate --cards personas/cards --cards ../shared/data/card-v2-seraphina.png \\
        --adapter persona=personas/adapters/costar-persona --out outputs/eval/shipped-cards

It writes ``characters.md`` (averages, every character, every reply that broke character) and
``characters.json`` to ``--out``. Cards without conversations get distinct-n and the break rate.
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune.data import Conversation, read_jsonl, shipped_split
from finetune.errors import FinetuneError
from finetune.metrics import METEOR_NOTICE, bleu, chrf, distinct_n, meteor, wilson_interval
from finetune.tokenize import IGNORE_INDEX, tokenize_conversation

__all__ = ["EvalItem", "ModelScores", "evaluate_model", "load_scores", "main", "mc_items", "reply_items"]


@dataclass(frozen=True, slots=True)
class EvalItem:
    context: list[dict[str, str]]  # system + turns before the character's reply
    reference: str
    candidates: tuple[str, ...] = ()  # for the MC test: the reference first, then distractors
    persona: str = ""  # whose reply the reference is


@dataclass(slots=True)
class ModelScores:
    config: str
    perplexity: float
    bleu: float
    chrf: float
    meteor: float | None
    distinct_1: float
    distinct_2: float
    mc_accuracy: float | None
    replies: int
    mc_items: int
    mc_correct: int | None = None
    # Every held-out reply with the viewer line before it and the true reply, in held-out order.
    samples: list[dict[str, str]] = field(default_factory=list)

    @property
    def mc_interval(self) -> tuple[float, float] | None:
        """95% Wilson interval of the MC accuracy: with 60 items one item is 1.7 points."""
        return None if self.mc_correct is None else wilson_interval(self.mc_correct, self.mc_items)


def reply_items(conversations: Sequence[Conversation]) -> list[EvalItem]:
    """One item per character turn: the context before it and the true reply."""
    items = []
    for conversation in conversations:
        chat = conversation.chat()
        for index, message in enumerate(chat):
            if message["role"] == "assistant" and index > 0:
                items.append(EvalItem(context=chat[:index], reference=message["content"]))
    return items


def mc_items(conversations: Sequence[Conversation], seed: int = 0, choices: int = 4) -> list[EvalItem]:
    """The last character turn of each conversation against ``choices - 1`` other characters' replies."""
    rng = random.Random(seed)
    items = []
    for conversation in conversations:
        chat = conversation.chat()
        if chat[-1]["role"] != "assistant" or len(chat) < 2:
            continue
        distractors = list(conversation.distractors[: choices - 1])
        if len(distractors) < choices - 1:  # persona-chat style: borrow other conversations' replies
            others = [c for c in conversations if c is not conversation]
            pool = [c.turns[-1].content for c in others if c.persona != conversation.persona] or [
                c.turns[-1].content for c in others
            ]
            pool = [text for text in dict.fromkeys(pool) if text != chat[-1]["content"] and text not in distractors]
            distractors += rng.sample(pool, min(len(pool), choices - 1 - len(distractors)))
        if distractors:
            items.append(
                EvalItem(
                    context=chat[:-1],
                    reference=chat[-1]["content"],
                    candidates=(chat[-1]["content"], *distractors),
                    persona=conversation.persona,
                )
            )
    return items


# Sequences scored or generated per forward pass: on a CPU a 135M model is bound by reading its
# weights, so a batch of 8 costs little more than one sequence (measured: see docs/finetuning.md).
BATCH = 8


def _batches(items: Sequence[Any], size: int = BATCH) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _mean_nlls(model: Any, batch: Sequence[Any]) -> list[tuple[float, int]]:
    """Per sequence: mean negative log-likelihood over its labelled tokens, and how many there were."""
    import torch

    width = max(len(tokens.input_ids) for tokens in batch)
    # Right padding with label -100 and attention 0: a padded position never touches a real one.
    input_ids = torch.tensor([t.input_ids + [0] * (width - len(t.input_ids)) for t in batch], device=model.device)
    labels = torch.tensor([t.labels + [IGNORE_INDEX] * (width - len(t.labels)) for t in batch], device=model.device)
    mask = torch.tensor([[1] * len(t.input_ids) + [0] * (width - len(t.input_ids)) for t in batch], device=model.device)
    with torch.inference_mode():
        logits = model(input_ids=input_ids, attention_mask=mask).logits
    # A prompt-tuning model prepends its virtual tokens' logits: the sequence's own are the last ``width``.
    logits = logits[:, -width:, :][:, :-1, :].float()
    targets = labels[:, 1:]
    labelled = targets != IGNORE_INDEX
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets.clamp(min=0), reduction="none") * labelled
    counts = labelled.sum(dim=1)
    return [
        (float(total / count) if count else 0.0, int(count))
        for total, count in zip(nll.sum(dim=1), counts, strict=True)
    ]


def perplexity(model: Any, tokenizer: Any, conversations: Sequence[Conversation], max_length: int) -> float:
    tokenized = [tokenize_conversation(tokenizer, c.chat(), max_length) for c in conversations]
    total_nll, total_tokens = 0.0, 0
    for batch in _batches(tokenized):
        for mean, count in _mean_nlls(model, batch):
            total_nll += mean * count
            total_tokens += count
    return math.exp(total_nll / total_tokens) if total_tokens else float("nan")


def mc_correct(model: Any, tokenizer: Any, items: Sequence[EvalItem], max_length: int) -> int:
    """How many items the model answers right: the true reply scores highest of the candidates."""
    correct = 0
    for item in items:
        candidates = [
            tokenize_conversation(
                tokenizer, [*item.context, {"role": "assistant", "content": c}], max_length, last_turn_only=True
            )
            for c in item.candidates
        ]
        scores = [-mean for mean, _ in _mean_nlls(model, candidates)]
        correct += max(range(len(scores)), key=scores.__getitem__) == 0
    return correct


def generate_replies(
    model: Any, tokenizer: Any, contexts: Sequence[list[dict[str, str]]], max_new_tokens: int
) -> list[str]:
    """Greedy replies, a batch at a time (left-padded, so every prompt ends where its reply starts)."""
    import torch

    prompts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in contexts]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        encoded = tokenizer(list(prompts), add_special_tokens=False, padding=True, return_tensors="pt")
    finally:
        tokenizer.padding_side = side
    input_ids = encoded["input_ids"].to(model.device)
    with torch.inference_mode():
        output = model.generate(
            input_ids=input_ids,
            attention_mask=encoded["attention_mask"].to(model.device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    return [tokenizer.decode(row[input_ids.shape[1] :], skip_special_tokens=True).strip() for row in output]


def evaluate_model(
    config: str,
    model: Any,
    tokenizer: Any,
    conversations: Sequence[Conversation],
    max_new_tokens: int = 48,
    max_length: int = 1024,
    seed: int = 0,
) -> ModelScores:
    from tqdm.auto import tqdm

    model.eval()
    items = reply_items(conversations)
    replies = [
        reply
        for batch in tqdm(list(_batches(items)), desc=f"{config}: replies")
        for reply in generate_replies(model, tokenizer, [item.context for item in batch], max_new_tokens)
    ]
    references = [item.reference for item in items]
    choice_items = mc_items(conversations, seed)
    correct = mc_correct(model, tokenizer, choice_items, max_length) if choice_items else None
    return ModelScores(
        config=config,
        perplexity=perplexity(model, tokenizer, conversations, max_length),
        bleu=bleu(replies, references),
        chrf=chrf(replies, references),
        meteor=meteor(replies, references),
        distinct_1=distinct_n(replies, 1),
        distinct_2=distinct_n(replies, 2),
        mc_accuracy=None if correct is None else correct / len(choice_items),
        replies=len(replies),
        mc_items=len(choice_items),
        mc_correct=correct,
        samples=[
            {"context": item.context[-1]["content"], "reference": item.reference, "reply": reply}
            for item, reply in zip(items, replies, strict=True)
        ],
    )


def load_scores(path: Path) -> list[ModelScores]:
    """The rows of an earlier ``report.json``."""
    import json

    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        # mc_interval is derived from mc_correct and mc_items, written for readers of the JSON only.
        return [ModelScores(**{k: v for k, v in row.items() if k != "mc_interval"}) for row in payload["results"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FinetuneError(f"{path}: not a report.json written by finetune.evaluate ({exc})") from exc


def _load_conversations(path: str, card_path: str, limit: int | None) -> list[Conversation]:
    from finetune.persona import with_card_prompts

    return with_card_prompts(read_jsonl(path)[:limit], path, card_path)


def _check_same_heldout(rows: Sequence[ModelScores], conversations: Sequence[Conversation]) -> None:
    references = [item.reference for item in reply_items(conversations)]
    for row in rows:
        if [sample["reference"] for sample in row.samples] != references:
            raise FinetuneError(f"--include row {row.config!r} was measured on a different held-out set")


def _adapter_spec(spec: str) -> tuple[str, str]:
    name, separator, path = spec.partition("=")
    if not separator:
        path, name = spec, Path(spec).name
    return name, path


def evaluate_all(
    base_model: str,
    adapters: list[tuple[str, str]],
    conversations: list[Conversation],
    include_base: bool = True,
    max_new_tokens: int = 48,
    max_length: int = 1024,
) -> list[ModelScores]:
    from peft import PeftModel

    from finetune.modeling import load_causal_lm, load_tokenizer, resolve_base_model

    model_path = resolve_base_model(base_model)
    tokenizer = load_tokenizer(model_path)
    results = []
    if include_base:
        results.append(
            evaluate_model("base", load_causal_lm(model_path), tokenizer, conversations, max_new_tokens, max_length)
        )
    for name, path in adapters:
        # A fresh base per adapter: prompt-tuning and LoRA adapters cannot share one PeftModel.
        model = PeftModel.from_pretrained(load_causal_lm(model_path), path)
        results.append(evaluate_model(name, model, tokenizer, conversations, max_new_tokens, max_length))
    return results


def _parser() -> argparse.ArgumentParser:
    from finetune.persona import DEFAULT_CARD

    parser = argparse.ArgumentParser(
        prog="python -m finetune.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--adapter", action="append", default=[], help="NAME=PATH of an adapter to evaluate (repeatable)"
    )
    parser.add_argument("--base-model", default="smollm2", help="base model: 'smollm2', a folder or a Hub id")
    parser.add_argument("--no-base", action="store_true", help="skip the base model's row")
    parser.add_argument(
        "--data", help="held-out conversational JSONL (default: Pip's held-out split; with --cards: none)"
    )
    parser.add_argument(
        "--cards",
        action="append",
        default=[],
        type=Path,
        help="measure per character: a card file or a folder of cards (repeatable)",
    )
    parser.add_argument(
        "--tags",
        action="append",
        type=Path,
        help="--cards: folder of tag or material files <id>.yaml for the break check (repeatable; "
        "default: finetune/data/persona/tags and material)",
    )
    parser.add_argument(
        "--only-in-data", action="store_true", help="--cards: skip cards with no conversation in --data"
    )
    parser.add_argument("--no-own", action="store_true", help="--cards: skip the adapters the cards bind themselves")
    parser.add_argument(
        "--engine",
        choices=("llamacpp", "transformers"),
        default="llamacpp",
        help="--cards: llamacpp (the GGUF costar serves, fast on a CPU) or transformers (fp32, batched)",
    )
    parser.add_argument("--per-character", type=int, help="--cards: at most N held-out conversations per character")
    parser.add_argument(
        "--card", default=str(DEFAULT_CARD), help="card rendered into conversations without a system turn"
    )
    parser.add_argument("--limit", type=int, help="evaluate on the first N conversations only")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument(
        "--include",
        action="append",
        default=[],
        type=Path,
        help="report.json (with --cards: characters.json) of an earlier run on the same held-out set whose rows "
        "come first (repeatable)",
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 is often fastest on a busy shared machine)")
    parser.add_argument(
        "--out", type=Path, default=Path("outputs/eval"), help="folder for report.md, report.json, report.png"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from finetune.report import write_reports

    args = _parser().parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.cards:
        return _main_per_character(args)
    args.data = args.data or str(shipped_split("heldout"))
    try:
        conversations = _load_conversations(args.data, args.card, args.limit)
        earlier = [row for path in args.include for row in load_scores(path)]
        _check_same_heldout(earlier, conversations)
        results = earlier + evaluate_all(
            args.base_model,
            [_adapter_spec(spec) for spec in args.adapter],
            conversations,
            include_base=not args.no_base,
            max_new_tokens=args.max_new_tokens,
            max_length=args.max_length,
        )
    except FinetuneError as exc:
        raise SystemExit(f"error: {exc}") from None
    markdown = write_reports(results, args.out, dataset=args.data)
    print(markdown)
    if any(result.meteor is None for result in results):
        print(f"\nnotice: {METEOR_NOTICE}")
    return 0


def _main_per_character(args: argparse.Namespace) -> int:
    from finetune import per_character

    try:
        cards = per_character.load_cards_under_test(args.cards, args.tags or per_character.DEFAULT_TAG_DIRS)
        conversations = _load_conversations(args.data, args.card, args.limit) if args.data else []
        if args.only_in_data:
            cards = per_character.cards_in(cards, conversations)
        earlier = per_character.rescore(
            [row for path in args.include for row in per_character.load_character_rows(path)], cards
        )
        rows = earlier + per_character.evaluate_cards(
            args.base_model,
            [_adapter_spec(spec) for spec in args.adapter],
            cards,
            conversations,
            include_base=not args.no_base,
            include_own=not args.no_own,
            per_character=args.per_character,
            engine=args.engine,
            threads=args.threads,
            max_new_tokens=args.max_new_tokens,
            max_length=args.max_length,
        )
    except FinetuneError as exc:
        raise SystemExit(f"error: {exc}") from None
    untagged = [card.persona_id for card in cards if not card.tagged]
    print(
        per_character.write_character_reports(
            rows, args.out, dataset=args.data or "", max_new_tokens=args.max_new_tokens, untagged=untagged
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
