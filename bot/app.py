"""Wiring: settings → memory, personas, backend, manager → the adapters that should run."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from pathlib import Path
from typing import Any, Protocol

from bot.commands import SceneSwitcher
from bot.errors import USER_ERRORS, one_line
from bot.on_stream import OnStream
from bot.shutdown import StopRequest, stop_signals
from engine.backends.base import Backend
from engine.backends.factory import make_backend
from engine.backends.resilience import BreakerState, with_resilience
from engine.base.clock import Clock
from engine.errors import SettingsError
from engine.hearing.listener import TalkToggle
from engine.manager import ConversationManager
from engine.observability.metrics import Metrics
from engine.prompting.tokens import TokenCounter, load_token_counter
from engine.recall.embedding import Embedder, embedder_from_settings
from engine.serving.model_store import DEFAULT_MODEL, DEFAULT_MODEL_HUB_ID
from engine.settings import Settings
from engine.stream.commands import load_channel_file
from memory import SqliteMemoryStore
from personas.card import AdapterBinding, PersonaCard
from personas.registry import BUILTIN_CARDS_DIR, PERSONA_ADAPTER_DIR, PERSONA_ADAPTER_NAME, PersonaRegistry

__all__ = ["Adapter", "build_manager", "close_manager", "load_personas", "run"]

log = logging.getLogger(__name__)


class Adapter(Protocol):
    async def start(self) -> None: ...  # runs until the platform session ends or close() is called
    async def drain(self, grace_s: float) -> None: ...  # stop taking lines; wait for replies in flight
    async def close(self) -> None: ...


def load_personas(settings: Settings, *, report: bool = True) -> PersonaRegistry:
    """Every installed card; each card that failed to load is logged once (``report``)."""
    registry = PersonaRegistry.from_dirs([BUILTIN_CARDS_DIR, settings.core.personas_dir])
    for error in registry.errors if report else ():
        log.error("Skipping persona card: %s", one_line(error))
    if not settings.backend.adapters:  # COSTAR_BACKEND_ADAPTERS=false: the cards' adapters are ignored
        registry.drop_adapters()
    elif settings.backend.persona_adapter:
        _bind_persona_adapter(registry, settings)
    return registry


def _bind_persona_adapter(registry: PersonaRegistry, settings: Settings) -> None:
    """Cards without an adapter of their own get the persona-following one, where it was trained for
    the base model the card answers with (on another base it would load silently and speak nonsense)."""
    from bot.adapter_check import check_adapter

    folder = PERSONA_ADAPTER_DIR
    if not (folder / "adapter_config.json").is_file():
        return  # not installed: every such card answers with the bare base model, as before
    binding = AdapterBinding(name=PERSONA_ADAPTER_NAME, path=str(folder))

    def fits(card: PersonaCard) -> bool:
        bound = card.model_copy(update={"model": card.model.model_copy(update={"adapter": binding})})
        return not check_adapter(bound, None, settings.backend.model).problems

    bound = registry.bind_shared_adapter(binding, fits)
    if bound:
        log.info("Personas %s speak through the persona adapter %s", ", ".join(sorted(bound)), folder)


def _tokenizer_source(settings: Settings) -> str | Path | None:
    if settings.backend.tokenizer:
        return settings.backend.tokenizer
    if settings.backend.kind == "llamacpp":
        from engine.serving.model_store import gguf_model_path

        return gguf_model_path(settings.backend.model_path)  # counted with the GGUF's own vocabulary
    model = settings.backend.model
    if model in (DEFAULT_MODEL, DEFAULT_MODEL_HUB_ID) and settings.backend.kind == "embedded":
        from engine.serving.model_store import ensure_default_model

        return ensure_default_model(settings.core.cache_dir)
    return model if Path(model).expanduser().exists() else None


async def build_manager(
    settings: Settings,
    backend: Backend | None = None,
    counter: TokenCounter | None = None,
    *,
    embedder: Embedder | None = None,
    clock: Clock | None = None,
) -> ConversationManager:
    """Open memory, load personas, start the backend and the embedding worker; blocking steps run in
    worker threads. ``embedder``: instead of the one ``COSTAR_MEMORY_EMBEDDINGS`` names. ``clock``:
    what the manager's windows and cooldowns read (a simulated one in benchmarks)."""
    personas = await asyncio.to_thread(load_personas, settings)
    # Local backends load the adapters themselves; a remote server's are checked by the backend's start.
    if settings.backend.kind in ("embedded", "llamacpp"):
        _refuse_broken_adapters(personas, settings)
    if counter is None:
        source = await asyncio.to_thread(_tokenizer_source, settings)
        counter = await asyncio.to_thread(load_token_counter, source)
    memory = await SqliteMemoryStore.open(
        settings.db_path,
        busy_timeout_s=settings.memory.busy_timeout_s,
        max_waiting_lines=settings.memory.max_waiting_lines,
        write_patience_s=settings.memory.write_patience_s,
        vectors_held=settings.memory.vectors_held,
    )
    metrics = Metrics()
    backend = backend or with_resilience(make_backend(settings, personas, metrics, counter), settings)
    manager = ConversationManager(
        settings=settings,
        personas=personas,
        memory=memory,
        backend=backend,
        counter=counter,
        metrics=metrics,
        embedder=embedder or embedder_from_settings(settings),
        clock=clock,
    )
    from bot.platforms import register_limits

    register_limits(manager)  # each platform's output rules, so a replayed line comes out as it would live
    try:
        manager.default_persona()  # fail early with a clear message when no persona is usable
        await manager.start_embeddings()
        await manager.restore_controls()  # a mute survives a restart
    except BaseException:
        await memory.close()
        raise
    _export_component_counts(manager)
    return manager


def _refuse_broken_adapters(personas: PersonaRegistry, settings: Settings) -> None:
    """Stop at start, not at the first reply of that persona, when a bound adapter cannot be used."""
    from bot.adapter_check import check_adapter

    broken = []
    for persona_id, card in personas.cards.items():
        source = personas.sources.get(persona_id)
        problems = check_adapter(card, source, settings.backend.model).problems
        if problems:
            broken.append(f"persona {persona_id} ({source}): {'; '.join(problems)}")
    if broken:
        raise SettingsError(
            "unusable LoRA adapter: " + " | ".join(broken) + ". Fix model.adapter.path in the card "
            "(`costar persona check CARD` checks it) or remove model.adapter to answer with the base model"
        )


def freeze_startup_heap() -> None:
    """Exempt what start-up built (modules, settings, cards, the model) from garbage collection.

    It lives as long as the process; left in the collector's care, every full collection during
    a chat flood walks all of it again (the embedded model makes that the bulk of the heap).
    """
    gc.collect()  # what is already garbage must not be frozen with the rest
    gc.freeze()


def _export_component_counts(manager: ConversationManager) -> None:
    manager.metrics.watch_counts(
        "costar_moderation_actions",
        "Moderation findings acted on",
        ["rule", "action"],
        lambda: manager.moderator.counts,
    )
    breaker = getattr(manager.backend, "breaker", None)
    if breaker is not None:
        manager.metrics.watch_counts(
            "costar_circuit_events", "Backend circuit breaker events", ["event"], lambda: breaker.counts
        )
        manager.metrics.watch_gauges(
            "costar_circuit_state",
            "Backend circuit breaker state (1 for the current one)",
            ["state"],
            lambda: {state.value: float(state is breaker.state) for state in BreakerState},
        )
    manager.metrics.watch_gauges(
        "costar_memory_bytes", "Memory database size on disk", [], lambda: _memory_bytes(manager)
    )
    manager.metrics.watch_gauges(
        "costar_send_budget_use",
        "Busiest channel's sends in the current window over its limit, per platform",
        ["platform"],
        manager.control.budget_use,
    )


def _memory_bytes(manager: ConversationManager) -> dict[tuple[()], float]:
    path = manager.settings.db_path
    size = 0
    for part in (path, path.with_name(path.name + "-wal")):  # WAL: recent writes live beside the file
        with contextlib.suppress(OSError):
            size += part.stat().st_size
    return {(): float(size)}


async def close_manager(manager: ConversationManager) -> None:
    await manager.backend.aclose()
    await manager.close()


def configured_adapters(
    settings: Settings,
    manager: ConversationManager,
    *,
    console: bool | None = None,
    scenes: SceneSwitcher | None = None,
    live: bool = False,
    talk: TalkToggle | None = None,
) -> list[Adapter]:
    from bot.platforms import PLATFORMS

    adapters: list[Adapter] = [
        platform.make_adapter(settings, manager, scenes)
        for platform in PLATFORMS
        if platform.make_adapter is not None and platform.starts(settings)
    ]
    if console or (console is None and not adapters):
        from bot.console.adapter import ConsoleAdapter

        adapters.append(ConsoleAdapter(settings, manager, live=live, talk=talk))
    return adapters


async def run(settings: Settings, *, console: bool | None = None, live: bool = False) -> int:
    """``live``: the console's channel counts as live from the start (timers, proactive talk)."""
    load_channel_file(settings.stream.commands_file)  # a broken commands file stops every start, first
    manager = await build_manager(settings)
    metrics_server = None
    if settings.metrics.port is not None:
        metrics_server = manager.metrics.serve(settings.metrics.port, settings.metrics.host)
        log.info("Prometheus metrics on http://%s:%d/metrics", settings.metrics.host, metrics_server.port)
    on_stream = None
    try:
        await manager.backend.start()
        on_stream = await OnStream.start(settings, manager)
        freeze_startup_heap()
        scenes = on_stream.obs if settings.obs.scene_command else None
        adapters = configured_adapters(
            settings, manager, console=console, scenes=scenes, live=live, talk=on_stream.talk
        )
        with stop_signals() as stop:
            results = await _run_adapters(adapters, stop, settings.core.shutdown_grace_s)
        failures = [result for result in results if isinstance(result, Exception)]
        for failure in failures:
            # Costar's own errors already say what to fix. Anything else keeps its traceback, but
            # not its text on the line: a platform library's error can quote a token (the
            # traceback passes the redaction filter, which knows the token file's values).
            if isinstance(failure, USER_ERRORS):
                log.error("adapter stopped: %s", one_line(failure))
            else:
                log.error("adapter stopped: %s", type(failure).__name__, exc_info=failure)
        return 1 if failures else 0
    finally:
        if on_stream is not None:
            await on_stream.close()
        if metrics_server is not None:
            metrics_server.stop()
        await close_manager(manager)  # flushes and closes memory


async def _run_adapters(adapters: list[Adapter], stop: StopRequest, grace_s: float) -> list[BaseException | None]:
    """Run every adapter until they all end or a stop is asked for; then close them in order.

    On a stop, no adapter takes new lines; replies already being written get ``grace_s``
    seconds (less if a second signal comes) before the platforms close.
    """
    running = [asyncio.create_task(adapter.start()) for adapter in adapters]
    all_ended = asyncio.gather(*running, return_exceptions=True)
    stopping = asyncio.create_task(stop.requested.wait())
    await _first_of(all_ended, stopping)
    stopping.cancel()
    if stop.requested.is_set():
        drains = asyncio.gather(*(adapter.drain(grace_s) for adapter in adapters), return_exceptions=True)
        hurry = asyncio.create_task(stop.hurry.wait())
        await _first_of(drains, hurry)
        hurry.cancel()
    for adapter in adapters:
        await adapter.close()
    for task in running:  # an adapter blocked on its input (a terminal) ends here
        if not task.done():
            task.cancel()
    results = await all_ended
    # A stop asked for is not a failure, whatever the adapters were doing when it came.
    return [None if isinstance(result, asyncio.CancelledError) else result for result in results]


async def _first_of(*waits: asyncio.Future[Any]) -> None:
    await asyncio.wait(set(waits), return_when=asyncio.FIRST_COMPLETED)
