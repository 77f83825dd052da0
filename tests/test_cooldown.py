"""Cooldown: one use per key per period, on whatever clock it is given."""

from __future__ import annotations

import pytest

from engine.base.clock import ManualClock
from engine.base.cooldown import Cooldown


async def test_a_key_never_used_is_ready() -> None:
    cooldown: Cooldown[str] = Cooldown(10, clock=ManualClock())
    assert cooldown.ready("alice")
    assert cooldown.remaining("alice") == 0.0


async def test_a_used_key_waits_out_the_duration_then_is_ready_again() -> None:
    clock = ManualClock()
    cooldown: Cooldown[str] = Cooldown(10, clock=clock)
    cooldown.trigger("alice")
    await clock.advance(9.5)
    assert not cooldown.ready("alice")
    assert cooldown.remaining("alice") == pytest.approx(0.5)
    await clock.advance(0.5)
    assert cooldown.ready("alice"), "ready exactly when the duration has passed"


async def test_try_use_uses_a_ready_key_and_refuses_one_cooling_without_restarting_it() -> None:
    clock = ManualClock()
    cooldown: Cooldown[str] = Cooldown(10, clock=clock)
    assert cooldown.try_use("alice")
    await clock.advance(6)
    assert not cooldown.try_use("alice")
    await clock.advance(4)
    assert cooldown.try_use("alice"), "a refused try does not push the cooldown back"


async def test_keys_cool_down_independently_and_any_hashable_key_works() -> None:
    cooldown: Cooldown[tuple[str, ...]] = Cooldown(10, clock=ManualClock())
    assert cooldown.try_use(("#chan", "show"))
    assert cooldown.try_use(("#chan", "forget", "alice"))
    assert cooldown.try_use(("#other", "show"))
    assert not cooldown.ready(("#chan", "show"))


async def test_a_zero_cooldown_never_blocks_and_reset_frees_a_key() -> None:
    clock = ManualClock()
    assert all(Cooldown[str](0, clock=clock).try_use("k") for _ in range(3))
    cooldown: Cooldown[str] = Cooldown(10, clock=clock)
    cooldown.trigger("alice")
    cooldown.reset("alice")
    assert cooldown.ready("alice")


async def test_expired_keys_are_forgotten_so_a_long_stream_does_not_grow_memory() -> None:
    clock = ManualClock()
    cooldown: Cooldown[int] = Cooldown(10, clock=clock)
    for user in range(1000):
        cooldown.trigger(user)
    await clock.advance(11)
    cooldown.trigger(-1)
    assert len(cooldown) == 1


def test_a_negative_cooldown_is_refused() -> None:
    with pytest.raises(ValueError):
        Cooldown(-1, clock=ManualClock())
