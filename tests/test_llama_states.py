"""Parked prompt states: the most recent channels' KV states kept within a byte bound."""

from __future__ import annotations

from engine.backends.llama_states import ParkedState, PrefixStates, shared_prefix


def _state(tokens: range, size: int = 100) -> ParkedState:
    return ParkedState(None, tuple(tokens), b"\0" * size)


def test_a_channel_gets_back_its_own_state_and_the_cache_lets_go_of_it() -> None:
    states = PrefixStates(capacity_bytes=1000)
    ann, bob = _state(range(0, 50)), _state(range(100, 140))
    states.park("ann", ann)
    states.park("bob", bob)
    assert states.take("ann") == ann
    assert states.take("ann") is None and len(states) == 1


def test_a_channels_newer_state_replaces_its_older_one() -> None:
    states = PrefixStates(capacity_bytes=1000)
    states.park("ann", _state(range(0, 20)))
    states.park("ann", _state(range(0, 35)))
    assert len(states) == 1 and states.size_bytes == 100
    taken = states.take("ann")
    assert taken is not None and len(taken.tokens) == 35


def test_the_least_recently_parked_channel_goes_first_when_the_bound_is_reached() -> None:
    states = PrefixStates(capacity_bytes=250)
    for channel in ("ann", "bob", "cat"):  # 100 bytes each
        states.park(channel, _state(range(10)))
    assert states.size_bytes <= 250
    assert states.take("ann") is None
    assert states.take("bob") is not None and states.take("cat") is not None


def test_parking_again_makes_a_channel_the_most_recent() -> None:
    states = PrefixStates(capacity_bytes=250)
    states.park("ann", _state(range(10)))
    states.park("bob", _state(range(10)))
    states.park("ann", _state(range(12)))
    states.park("cat", _state(range(10)))
    assert states.take("bob") is None and states.take("ann") is not None


def test_a_state_larger_than_the_whole_bound_is_not_kept() -> None:
    states = PrefixStates(capacity_bytes=50)
    states.park("ann", _state(range(0, 20), size=100))
    assert len(states) == 0


def test_shared_prefix_counts_the_leading_tokens_in_common() -> None:
    assert shared_prefix([1, 2, 3, 4], [1, 2, 9]) == 2
    assert shared_prefix([], [1]) == 0
    assert shared_prefix([5, 6], [5, 6, 7]) == 2
