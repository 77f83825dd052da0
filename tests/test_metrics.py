"""Prometheus metrics: what the bot exports and the /metrics endpoint serving it."""

from __future__ import annotations

import urllib.request

import pytest

from engine.observability.metrics import Metrics


def test_reply_timer_feeds_replies_and_both_latency_histograms() -> None:
    metrics = Metrics()
    timer = metrics.start_reply("twitch")
    timer.first_chunk()
    metrics.finish_reply(timer, persona="pip")

    sample = metrics.registry.get_sample_value
    assert sample("costar_replies_total", {"platform": "twitch", "persona": "pip"}) == 1
    assert sample("costar_time_to_first_chunk_seconds_count", {"platform": "twitch"}) == 1
    assert sample("costar_reply_latency_seconds_count", {"platform": "twitch"}) == 1


def test_reply_without_text_chunks_has_no_first_chunk_time() -> None:
    metrics = Metrics()
    metrics.finish_reply(metrics.start_reply("discord"), persona="pip")
    assert (
        metrics.registry.get_sample_value("costar_time_to_first_chunk_seconds_count", {"platform": "discord"}) is None
    )


def test_queue_depth_counts_only_while_waiting() -> None:
    metrics = Metrics()
    with metrics.waiting_for_slot():
        assert metrics.registry.get_sample_value("costar_queue_depth") == 1
    assert metrics.registry.get_sample_value("costar_queue_depth") == 0


def test_drops_and_backend_errors_are_counted_by_reason_and_kind() -> None:
    metrics = Metrics()
    metrics.drop("rate_limited")
    metrics.drop("rate_limited")
    metrics.backend_error(TimeoutError())
    assert metrics.registry.get_sample_value("costar_dropped_messages_total", {"reason": "rate_limited"}) == 2
    assert metrics.registry.get_sample_value("costar_backend_errors_total", {"kind": "TimeoutError"}) == 1


def test_metrics_endpoint_serves_the_prometheus_text_format() -> None:
    metrics = Metrics()
    metrics.drop("not_addressed")
    server = metrics.serve(0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:
            body = response.read().decode()
    finally:
        server.stop()
    assert 'costar_dropped_messages_total{reason="not_addressed"} 1.0' in body
    assert "# TYPE costar_reply_latency_seconds histogram" in body


def test_two_metrics_objects_do_not_collide() -> None:
    first, second = Metrics(), Metrics()
    first.drop("spam")
    assert second.registry.get_sample_value("costar_dropped_messages_total", {"reason": "spam"}) is None


def test_scheduler_outcomes_other_than_queued_or_replied_count_as_drops() -> None:
    from engine.flow.scheduler import Outcome

    metrics = Metrics()
    for outcome in (Outcome.QUEUED, Outcome.REPLIED, Outcome.STALE, Outcome.COPYPASTA, Outcome.STALE):
        metrics.scheduler_outcome(None, outcome)
    sample = metrics.registry.get_sample_value
    assert sample("costar_dropped_messages_total", {"reason": "stale"}) == 2
    assert sample("costar_dropped_messages_total", {"reason": "copypasta"}) == 1
    assert sample("costar_dropped_messages_total", {"reason": "queued"}) is None


async def test_moderation_and_circuit_breaker_counts_are_exported(make_settings, counter) -> None:
    from bot.app import build_manager, close_manager
    from engine.backends.resilience import with_resilience
    from engine.backends.scripted import ScriptedBackend
    from engine.errors import EngineError
    from engine.events import ChatEvent

    settings = make_settings()
    backend = with_resilience(ScriptedBackend([RuntimeError("down")] * 5), settings)
    manager = await build_manager(settings, backend=backend, counter=counter)
    try:
        shouting = ChatEvent(
            platform="twitch",
            channel_id="c",
            author_id="a",
            author_name="a",
            text="PIP ANSWER ME NOW RIGHT NOW!!!!!!!!",
            addresses_bot=True,
        )
        await manager.reply(await manager.hear(shouting))
        for _ in range(3):
            polite = ChatEvent(
                platform="twitch", channel_id="c", author_id="b", author_name="b", text="hi Pip", addresses_bot=True
            )
            heard = await manager.hear(polite)
            with pytest.raises(EngineError):  # failures, then the open breaker failing fast
                await manager.reply(heard)
        text = manager.metrics.render().decode()
    finally:
        await close_manager(manager)
    assert any(line.startswith("costar_moderation_actions_total{") for line in text.splitlines()), text
    assert 'costar_circuit_events_total{event="opened"} 1.0' in text
