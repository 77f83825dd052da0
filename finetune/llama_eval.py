"""The per-character evaluation on llama.cpp: the GGUF and the adapter costar serves by default.

On a 2-core machine transformers took 60 s for one 48-token probe reply of a 600-token card
prompt (215 s for a batch of 8) while other work shared the cores; llama.cpp takes about 6 s under
the same load, and far less for the next probe of the same card because it keeps the evaluated
prompt (the card) and evaluates only what differs. Scoring (perplexity, 1-of-4) reuses the shared
context the same way: the four candidates of an item cost their own tokens only.

Tokens come from the model's Hugging Face tokenizer and the same loss mask as training
(:func:`finetune.tokenize.tokenize_conversation`); SmolLM2's GGUF has the same vocabulary, so a
perplexity here differs from the transformers one only by the GGUF's Q4_1 weights.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from finetune.data import Conversation
from finetune.evaluate import EvalItem
from finetune.tokenize import IGNORE_INDEX, TokenizedConversation, tokenize_conversation

__all__ = ["LlamaCppEvaluator"]


def _common_prefix(left: Sequence[int], right: Sequence[int]) -> int:
    length = 0
    for a, b in zip(left, right, strict=False):
        if a != b:
            break
        length += 1
    return length


class LlamaCppEvaluator:
    """Greedy replies and token scores from one GGUF base (+ one LoRA adapter folder, converted)."""

    def __init__(self, tokenizer: Any, adapter: str | None, threads: int | None, n_ctx: int = 2048) -> None:
        from llama_cpp import Llama

        from engine.serving.gguf_lora import export_lora_gguf
        from engine.serving.model_store import gguf_model_path

        base = gguf_model_path(None)
        self.tokenizer = tokenizer
        self._scratch = tempfile.TemporaryDirectory(prefix="costar-eval-")
        lora = None
        if adapter is not None:
            lora = str(export_lora_gguf(Path(adapter), base, Path(self._scratch.name) / "adapter.gguf").path)
        options: dict[str, Any] = {"n_ctx": n_ctx, "verbose": False, "lora_path": lora}
        if threads:
            options |= {"n_threads": threads, "n_threads_batch": threads}
        self._generator = Llama(str(base), **options)
        self._scorer = Llama(str(base), logits_all=True, **options)

    def close(self) -> None:
        for llm in (self._generator, self._scorer):
            llm.close()
        self._scratch.cleanup()

    def replies(self, contexts: Sequence[list[dict[str, str]]], max_new_tokens: int) -> list[str]:
        """Greedy (temperature 0) replies; the kept prompt state makes a card's next probe cheap."""
        from tqdm.auto import tqdm

        replies = []
        for chat in tqdm(contexts, desc="probe replies"):
            answer = self._generator.create_chat_completion(chat, temperature=0.0, max_tokens=max_new_tokens)
            replies.append(str(answer["choices"][0]["message"]["content"] or "").strip())
        return replies

    def _nll(self, tokens: TokenizedConversation) -> tuple[float, int]:
        """Sum of negative log-likelihoods of the labelled tokens, and how many; evaluates only what
        the state does not hold yet."""
        llm = self._scorer
        ids = tokens.input_ids
        kept = min(_common_prefix(llm.input_ids[: llm.n_tokens].tolist(), ids), len(ids) - 1)
        llm.n_tokens = kept
        llm.eval(ids[kept:])
        total, count = 0.0, 0
        for position in range(1, len(ids)):
            if tokens.labels[position] == IGNORE_INDEX:
                continue
            logits = np.asarray(llm.scores[position - 1], dtype=np.float64)
            top = logits.max()
            total += float(top + math.log(np.exp(logits - top).sum()) - logits[ids[position]])
            count += 1
        return total, count

    def perplexity(self, conversations: Sequence[Conversation], max_length: int) -> float:
        total, count = 0.0, 0
        for conversation in conversations:
            nll, tokens = self._nll(tokenize_conversation(self.tokenizer, conversation.chat(), max_length))
            total, count = total + nll, count + tokens
        return math.exp(total / count) if count else float("nan")

    def mc_correct(self, items: Sequence[EvalItem], max_length: int) -> int:
        """Items whose true reply has the lowest mean NLL of its candidates."""
        correct = 0
        for item in items:
            means = []
            for candidate in item.candidates:
                chat = [*item.context, {"role": "assistant", "content": candidate}]
                nll, count = self._nll(tokenize_conversation(self.tokenizer, chat, max_length, last_turn_only=True))
                means.append(nll / count if count else math.inf)
            correct += min(range(len(means)), key=means.__getitem__) == 0
        return correct
