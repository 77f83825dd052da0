"""Copying a run of the character's own earlier replies gets dearer with each token; short echoes stay free."""

from __future__ import annotations

import re

import numpy as np

from engine.backends.base import ChatMessage, GenerationRequest
from engine.backends.phrase_penalty import OwnRepliesPhrasePenalty

EARLIER = [10, 11, 12, 13, 14]  # an earlier reply, as token ids


def _penalty(*replies: list[int]) -> OwnRepliesPhrasePenalty:
    return OwnRepliesPhrasePenalty(list(replies), prompt_tokens=0, multiplier=1.0, base=2.0, allowed=2)


def test_the_token_that_would_continue_a_copied_run_is_penalised_more_the_longer_the_copy() -> None:
    penalty = _penalty(EARLIER)
    assert penalty.penalties([11, 12]) == {13: 1.0}  # two tokens copied: the third costs the multiplier
    assert penalty.penalties([10, 11, 12]) == {13: 2.0}  # three copied: times the base
    assert penalty.penalties([10, 11, 12, 13]) == {14: 4.0}


def test_an_echo_shorter_than_the_allowed_run_costs_nothing() -> None:
    assert _penalty(EARLIER).penalties([12]) == {}
    assert _penalty(EARLIER).penalties([99, 12]) == {}  # only the last token matches


def test_a_loop_inside_the_reply_being_written_is_penalised_too() -> None:
    assert _penalty().penalties([7, 8, 9, 7, 8]) == {9: 1.0}


def test_the_processor_takes_the_penalty_off_the_logits_of_the_reply_after_the_prompt() -> None:
    prompt = [11, 12]  # the prompt's own tokens are never taken for the reply's
    processor = OwnRepliesPhrasePenalty([EARLIER], prompt_tokens=len(prompt), multiplier=1.5)
    untouched = processor(np.array(prompt, dtype=np.intc), np.zeros(20, dtype=np.single))
    assert not untouched.any()
    scores = processor(np.array([*prompt, 11, 12], dtype=np.intc), np.zeros(20, dtype=np.single))
    assert scores[13] == -1.5 and np.count_nonzero(scores) == 1


def _longest_shared_word_run(reply: str, earlier: str) -> int:
    said, before = re.findall(r"[\w']+", reply.lower()), re.findall(r"[\w']+", earlier.lower())
    return max(
        (n for n in range(1, len(said) + 1) for i in range(len(said) - n + 1) if _contains(before, said[i : i + n])),
        default=0,
    )


def _contains(words: list[str], run: list[str]) -> bool:
    return any(words[i : i + len(run)] == run for i in range(len(words) - len(run) + 1))


async def test_on_the_real_model_the_reply_keeps_the_viewers_answer_but_not_the_sentence_of_earlier_replies(
    llamacpp_backend,
) -> None:
    tic = "I'm a Scorpio, and I've been playing Mario Kart since I was a toddler."
    chat = (
        ChatMessage("system", "You are Pip, a cheerful co-host. Keep replies short."),
        ChatMessage("user", "ann: pip what's my star sign"),
        ChatMessage("assistant", f"Scorpio! {tic}"),
        ChatMessage("user", "cy: pip what game do I play"),
        ChatMessage("assistant", f"Mario Kart! {tic}"),
        ChatMessage("user", "dee: pip, what's my cat called? I told you it's Biryani"),
    )

    async def reply(penalty: float) -> str:
        request = GenerationRequest(chat, max_tokens=30, temperature=0.0, repeated_phrase_penalty=penalty)
        return await llamacpp_backend.complete(request)

    copied, penalised = await reply(0.0), await reply(0.8)
    assert _longest_shared_word_run(copied, tic) >= 4  # the history teaches the sentence
    assert _longest_shared_word_run(penalised, tic) <= 3
    assert "biryani" in penalised.lower()  # the viewer's own word is still free to say
