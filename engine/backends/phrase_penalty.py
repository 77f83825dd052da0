"""A penalty on repeating a run of the character's own earlier replies, token for token.

The llama.cpp backend's per-word penalty (``recent_words_penalty``) makes a word of the last few
replies less likely, but a 135M model copies whole sentences from its own turns in the history
("I'm a Scorpio, and I've been playing Mario Kart since I was a toddler." closed 25 of 47
replies in one channel of ``bench/recall.py``), and a word penalty strong enough to stop that also
stops the words a viewer's question needs. This is the DRY idea (Don't Repeat Yourself, as
llama.cpp's and text-generation-webui's samplers define it): when the last ``n`` tokens generated
equal a run in an earlier reply and ``n`` reaches ``allowed``, the token that would continue the
copy loses ``multiplier * base ** (n - allowed)`` from its logit. Short echoes ("Rio!", a
viewer's name) stay free; a sentence copied from a previous turn gets dearer with each token, and
so does a loop within the reply being written ("I'm a Scorpio, and I'm a Scorpio, and …").

Unlike llama.cpp's DRY sampler it reads only the character's own replies, never the viewer's
lines or the "What Pip remembers" block, whose words a reply should repeat.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

__all__ = ["LogitBias", "LogitsProcessor", "OwnRepliesPhrasePenalty"]

# What llama-cpp-python's ``logits_processor`` list holds: (tokens so far, logits) -> logits.
LogitsProcessor: TypeAlias = Callable[[npt.NDArray[np.intc], npt.NDArray[np.single]], npt.NDArray[np.single]]

# The penalty stops growing at a run this long: 1.75 ** 6, 29 times the multiplier, already rules a token out.
_LONGEST_COUNTED = 8


@dataclass(slots=True)
class OwnRepliesPhrasePenalty:
    """A llama-cpp-python logits processor: ``(input_ids, scores) -> scores``.

    ``prompt_tokens`` is the prompt's length, so the tokens after it are the reply so far;
    ``replies`` are the token ids of the character's earlier replies.
    """

    replies: Sequence[Sequence[int]]
    prompt_tokens: int
    multiplier: float
    base: float = 1.75
    allowed: int = 2

    def __call__(self, input_ids: npt.NDArray[np.intc], scores: npt.NDArray[np.single]) -> npt.NDArray[np.single]:
        generated = [int(token) for token in input_ids[self.prompt_tokens :]]
        for token, penalty in self.penalties(generated).items():
            scores[token] -= penalty
        return scores

    def penalties(self, generated: Sequence[int]) -> dict[int, float]:
        """The logit taken off each token that would lengthen a copy of an earlier reply, or of an
        earlier run of this one."""
        if len(generated) < self.allowed:
            return {}
        found: dict[int, float] = {}
        for reply in (*self.replies, generated):  # and a loop inside the reply being written
            for end in range(1, len(reply)):  # reply[end] would continue a copy of reply[..end)
                length = _common_suffix(reply, end, generated)
                if length >= self.allowed:
                    exponent = min(length, _LONGEST_COUNTED) - self.allowed
                    penalty = self.multiplier * self.base**exponent
                    found[reply[end]] = max(found.get(reply[end], 0.0), penalty)
        return found


def _common_suffix(reply: Sequence[int], end: int, generated: Sequence[int]) -> int:
    """How many tokens before ``reply[end]`` equal the last tokens of ``generated``."""
    length = 0
    while length < end and length < len(generated) and reply[end - 1 - length] == generated[-1 - length]:
        length += 1
    return length


@dataclass(slots=True)
class LogitBias:
    """A logits processor adding a fixed amount to some tokens' logits (llama.cpp's ``logit_bias``)."""

    bias: dict[int, float]

    def __call__(self, input_ids: npt.NDArray[np.intc], scores: npt.NDArray[np.single]) -> npt.NDArray[np.single]:
        for token, amount in self.bias.items():
            scores[token] += amount
        return scores
