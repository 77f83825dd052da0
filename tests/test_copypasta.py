"""RepeatWindow: the one windowed repeat counter behind moderation's copypasta rule and the
scheduler's duplicate and copypasta-wave rules."""

from __future__ import annotations

import pytest

from engine.base.repeats import RepeatWindow


def test_copies_of_a_fingerprint_are_counted_per_channel() -> None:
    window = RepeatWindow(30)
    assert window.see("#a", "hello", 0.0, "u1").copies == 1
    assert window.see("#a", "hello", 1.0, "u2").copies == 2
    assert window.see("#b", "hello", 1.0, "u3").copies == 1, "another channel counts on its own"
    assert window.see("#a", "other", 2.0, "u1").copies == 1


def test_distinct_authors_and_an_authors_own_repeats_are_told_apart() -> None:
    window = RepeatWindow(30)
    first = window.see("#a", "pasta", 0.0, "u1")
    again = window.see("#a", "pasta", 1.0, "u1")
    other = window.see("#a", "pasta", 2.0, "u2")
    assert not first.repeated_by_author and first.authors == 1
    assert again.repeated_by_author and again.authors == 1 and again.copies == 2
    assert not other.repeated_by_author and other.authors == 2 and other.copies == 3


def test_lines_older_than_the_window_stop_counting() -> None:
    window = RepeatWindow(30)
    window.see("#a", "pasta", 0.0, "u1")
    window.see("#a", "pasta", 10.0, "u2")
    seen = window.see("#a", "pasta", 35.0, "u1")
    assert (seen.copies, seen.authors, seen.repeated_by_author) == (2, 2, False)
    assert len(window) == 2, "expired lines are dropped, not just skipped"


@pytest.mark.parametrize(("keep_edge", "copies"), [(True, 2), (False, 1)])
def test_a_line_exactly_one_window_old_counts_only_when_the_edge_is_kept(keep_edge: bool, copies: int) -> None:
    window = RepeatWindow(30, keep_edge=keep_edge)
    window.see("#a", "pasta", 0.0)
    assert window.see("#a", "pasta", 30.0).copies == copies


def test_at_most_max_lines_are_remembered_per_channel() -> None:
    window = RepeatWindow(3600, max_lines=3)
    window.see("#a", "pasta", 0.0)
    for second in range(1, 4):
        window.see("#a", f"filler {second}", float(second))
    assert window.copies("#a", "pasta") == 0, "pushed out by newer lines"
    assert window.see("#a", "pasta", 5.0).copies == 1


def test_running_counts_match_a_naive_rescan_through_a_long_flood() -> None:
    window = RepeatWindow(10, keep_edge=False)
    history: list[tuple[float, str, str]] = []
    for tick in range(3000):
        now, text, author = tick / 100, f"line {tick % 7}", f"u{tick % 5}"
        history.append((now, text, author))
        recent = [(t, a) for t, f, a in history if f == text and t > now - 10]
        seen = window.see("#a", text, now, author)
        assert seen.copies == len(recent)
        assert seen.authors == len({a for _, a in recent})
        assert seen.by_author == sum(1 for _, a in recent if a == author)
