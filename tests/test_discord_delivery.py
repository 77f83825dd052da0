"""Splitting replies for Discord's 2,000-character limit and pacing streamed edits."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from bot.discord.delivery import ChannelThrottle, split_message
from engine.base.clock import ManualClock


def _words(text: str) -> list[str]:
    return text.split()


def test_short_reply_is_one_message() -> None:
    assert split_message("Hello there, chat!") == ["Hello there, chat!"]


def test_blank_reply_sends_nothing() -> None:
    assert split_message("  \n ") == []


def test_long_reply_is_cut_at_a_sentence_end() -> None:
    sentence = "The dragon sleeps under the mountain. "
    pieces = split_message(sentence * 100, limit=2000)
    assert all(len(piece) <= 2000 for piece in pieces)
    assert all(piece.endswith("mountain.") for piece in pieces)
    assert _words(" ".join(pieces)) == _words(sentence * 100)


def test_long_reply_prefers_a_line_break_to_a_sentence_end() -> None:
    first_block = "One. Two. Three. " * 50 + "\n"
    pieces = split_message(first_block + "x " * 400, limit=1000)
    assert pieces[0] == first_block.strip()


def test_text_without_spaces_is_cut_hard_at_the_limit() -> None:
    assert [len(piece) for piece in split_message("a" * 4500, limit=2000)] == [2000, 2000, 500]


@given(st.text(alphabet=st.sampled_from(list("ab .!?\n…")), max_size=6000), st.integers(min_value=100, max_value=2000))
def test_every_piece_fits_and_nothing_is_lost_or_reordered(text: str, limit: int) -> None:
    pieces = split_message(text, limit)
    assert all(0 < len(piece) <= limit for piece in pieces)
    assert all(piece.strip() for piece in pieces)
    assert re.sub(r"\s", "", "".join(pieces)) == re.sub(r"\s", "", text)


async def test_throttle_allows_one_edit_per_interval_per_channel() -> None:
    clock = ManualClock(100.0)
    throttle = ChannelThrottle(interval_s=1.0, clock=clock)
    assert throttle.ready(1)
    throttle.mark(1)
    await clock.advance(0.5)
    assert not throttle.ready(1)
    assert throttle.ready(2), "another channel has its own budget"
    await clock.advance(0.5)
    assert throttle.ready(1)


def test_five_thousand_character_reply_becomes_three_ordered_messages() -> None:
    text = " ".join(f"Line {index} of the tale." for index in range(260))
    assert len(text) > 5000
    pieces = split_message(text, limit=2000)
    assert len(pieces) == 3
    assert all(len(piece) <= 2000 and piece.endswith("tale.") for piece in pieces)
    assert " ".join(pieces) == text
