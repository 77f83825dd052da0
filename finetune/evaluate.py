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

Prints the Markdown table and writes ``report.md``, ``report.json`` and ``report.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune.data import Conversation, read_jsonl, shipped_split, with_system_prompt
from finetune.errors import FinetuneError
from finetune.metrics import METEOR_NOTICE, bleu, chrf, distinct_n, meteor
from finetune.tokenize import tokenize_conversation

__all__ = ["EvalItem", "ModelScores", "evaluate_model", "main", "mc_items", "reply_items"]


@dataclass(frozen=True, slots=True)
class EvalItem:
    context: list[dict[str, str]]  # system + turns before the character's reply
    reference: str
    candidates: tuple[str, ...] = ()  # for the MC test: the reference first, then distractors


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
    samples: list[dict[str, str]] = field(default_factory=list)


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
                    context=chat[:-1], reference=chat[-1]["content"], candidates=(chat[-1]["content"], *distractors)
                )
            )
    return items


def _mean_nll(model: Any, tokens: Any) -> tuple[float, int]:
    """Mean negative log-likelihood over the labelled tokens, and how many there were."""
    import torch

    count = tokens.trained_tokens
    if count == 0:
        return 0.0, 0
    input_ids = torch.tensor([tokens.input_ids], device=model.device)
    labels = torch.tensor([tokens.labels], device=model.device)
    with torch.inference_mode():
        loss = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), labels=labels).loss
    return float(loss), count


def perplexity(model: Any, tokenizer: Any, conversations: Sequence[Conversation], max_length: int) -> float:
    total_nll, total_tokens = 0.0, 0
    for conversation in conversations:
        mean, count = _mean_nll(model, tokenize_conversation(tokenizer, conversation.chat(), max_length))
        total_nll += mean * count
        total_tokens += count
    return math.exp(total_nll / total_tokens) if total_tokens else float("nan")


def mc_accuracy(model: Any, tokenizer: Any, items: Sequence[EvalItem], max_length: int) -> float | None:
    if not items:
        return None
    correct = 0
    for item in items:
        scores = [
            -_mean_nll(
                model,
                tokenize_conversation(
                    tokenizer, [*item.context, {"role": "assistant", "content": c}], max_length, last_turn_only=True
                ),
            )[0]
            for c in item.candidates
        ]
        correct += max(range(len(scores)), key=scores.__getitem__) == 0
    return correct / len(items)


def generate_reply(model: Any, tokenizer: Any, context: list[dict[str, str]], max_new_tokens: int) -> str:
    import torch

    prompt = tokenizer.apply_chat_template(context, tokenize=False, add_generation_prompt=True)
    input_ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"].to(model.device)
    with torch.inference_mode():
        output = model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    return tokenizer.decode(output[0, input_ids.shape[1] :], skip_special_tokens=True).strip()


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
        generate_reply(model, tokenizer, item.context, max_new_tokens)
        for item in tqdm(items, desc=f"{config}: replies")
    ]
    references = [item.reference for item in items]
    choice_items = mc_items(conversations, seed)
    return ModelScores(
        config=config,
        perplexity=perplexity(model, tokenizer, conversations, max_length),
        bleu=bleu(replies, references),
        chrf=chrf(replies, references),
        meteor=meteor(replies, references),
        distinct_1=distinct_n(replies, 1),
        distinct_2=distinct_n(replies, 2),
        mc_accuracy=mc_accuracy(model, tokenizer, choice_items, max_length),
        replies=len(replies),
        mc_items=len(choice_items),
        samples=[
            {"context": item.context[-1]["content"], "reference": item.reference, "reply": reply}
            for item, reply in zip(items, replies, strict=True)
        ][:5],
    )


def _load_conversations(path: str, card_path: str, limit: int | None) -> list[Conversation]:
    from finetune.persona import load_card, system_prompt

    conversations = read_jsonl(path)[:limit]
    if all(c.system_prompt is not None for c in conversations):
        return conversations
    prompt = system_prompt(load_card(card_path))
    return [c if c.system_prompt is not None else with_system_prompt(c, prompt) for c in conversations]


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
    parser.add_argument("--data", default=str(shipped_split("heldout")), help="held-out conversational JSONL")
    parser.add_argument(
        "--card", default=str(DEFAULT_CARD), help="card rendered into conversations without a system turn"
    )
    parser.add_argument("--limit", type=int, help="evaluate on the first N conversations only")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--max-length", type=int, default=1024)
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
    try:
        conversations = _load_conversations(args.data, args.card, args.limit)
        results = evaluate_all(
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


if __name__ == "__main__":
    raise SystemExit(main())
