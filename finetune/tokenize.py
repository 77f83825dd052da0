"""Tokens and the loss mask: the model learns the character's turns, nothing else.

SmolLM2's chat template has no ``{% generation %}`` markers, so trl's ``assistant_only_loss``
cannot find the assistant's tokens on its own. Instead of patching the template (and risking a
training prompt that differs from serving's by one byte) we render with the model's own template
and locate each character turn by rendering the conversation up to it: the text of
``messages[:i]`` + generation prompt ends where turn ``i`` starts, the text of ``messages[:i+1]``
ends where it stops. Token offsets then say which tokens fall inside. This works for any
template that renders earlier turns identically when later ones are added (ChatML, Llama 3, …).

The end-of-turn token (``<|im_end|>``) is part of the character's span: the model must learn to stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from finetune.errors import DataError

__all__ = ["IGNORE_INDEX", "TokenizedConversation", "character_spans", "tokenize_conversation"]

IGNORE_INDEX = -100  # the label PyTorch's cross-entropy skips


@dataclass(frozen=True, slots=True)
class TokenizedConversation:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX outside the character's turns

    @property
    def trained_tokens(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


def _render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def character_spans(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character span ``(start, end)`` of each assistant turn."""
    full = _render(tokenizer, messages, generation_prompt=False)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:index], generation_prompt=True) if index else ""
        through = _render(tokenizer, messages[: index + 1], generation_prompt=False).rstrip()
        if not full.startswith(before) or not full.startswith(through):
            raise DataError(
                "chat template",
                "renders earlier turns differently once later turns are added; "
                "cannot locate the character's turns for the loss mask",
            )
        spans.append((len(before), len(through)))
    return full, spans


def tokenize_conversation(
    tokenizer: Any, messages: list[dict[str, str]], max_length: int | None = None, last_turn_only: bool = False
) -> TokenizedConversation:
    """Tokens of the rendered conversation; labels on the character's turns (or its last one only)."""
    text, spans = character_spans(tokenizer, messages)
    spans = spans[-1:] if last_turn_only else spans
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids: list[int] = encoded["input_ids"]
    labels = [IGNORE_INDEX] * len(input_ids)
    for position, (start, end) in enumerate(encoded["offset_mapping"]):
        if any(span_start <= start and end <= span_end and end > start for span_start, span_end in spans):
            labels[position] = input_ids[position]
    if max_length is not None:
        input_ids, labels = input_ids[:max_length], labels[:max_length]
    return TokenizedConversation(input_ids=input_ids, labels=labels)
