"""A warm first reply: system prompts are evaluated before the first line and kept on disk across restarts."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.app import build_manager, close_manager
from engine.backends.base import ChatMessage, GenerationRequest
from engine.backends.llama_saved_states import SavedStates
from engine.backends.llama_states import ParkedState
from engine.backends.resilience import with_resilience
from engine.events import ChatEvent
from engine.prompting.tokens import TokenCounter
from tests.test_read_ahead import ReadsAhead, settle

SYSTEM = ChatMessage("system", "You are Pip, the cheerful green pixel sprite who co-hosts a cozy stream's chat.")


def _state(tokens: tuple[int, ...], size: int = 64) -> ParkedState:
    return ParkedState(None, tokens, bytes(range(256))[:size] * 4)


def test_a_saved_state_is_found_again_only_for_the_same_model_adapter_and_prompt(tmp_path: Path) -> None:
    states = SavedStates(tmp_path, 1 << 20, "model-a")
    states.save("adapter-x", _state((1, 2, 3)))

    assert states.load("adapter-x", None, (1, 2, 3)) == _state((1, 2, 3))
    assert states.load("adapter-y", None, (1, 2, 3)) is None  # another adapter
    assert states.load("adapter-x", None, (1, 2, 4)) is None  # another prompt
    assert SavedStates(tmp_path, 1 << 20, "model-b").load("adapter-x", None, (1, 2, 3)) is None
    assert len({states.key(a, t) for a in ("adapter-x", "adapter-y") for t in ((1, 2, 3), (1, 2, 4))}) == 4


def test_a_corrupt_state_file_is_ignored_with_one_log_line_and_removed(tmp_path: Path, caplog) -> None:
    states = SavedStates(tmp_path, 1 << 20, "model-a")
    states.save("none", _state((5, 6)))
    (saved,) = tmp_path.glob("*.kvstate")
    saved.write_bytes(saved.read_bytes()[:-10])  # cut short, as by a crash

    with caplog.at_level(logging.WARNING):
        assert states.load("none", None, (5, 6)) is None
    assert len(caplog.records) == 1 and saved.name in caplog.records[0].getMessage()
    assert not saved.exists()


def test_the_state_folder_stays_within_its_size_dropping_the_least_recently_used(tmp_path: Path) -> None:
    one = len(_state((1,)).data)
    states = SavedStates(tmp_path, 3 * one + 3 * 200, "model-a")  # room for three files and their headers
    for first in range(1, 4):
        states.save("none", _state((first,)))
    assert states.load("none", None, (1,)) is not None  # used again: the second is now the oldest
    states.save("none", _state((4,)))

    assert [states.load("none", None, (n,)) is not None for n in (1, 2, 3, 4)] == [True, False, True, True]
    assert sum(path.stat().st_size for path in tmp_path.iterdir()) <= states.capacity_bytes


async def test_a_persona_switch_warms_the_channel_before_its_first_line(make_settings, counter: TokenCounter) -> None:
    backend = ReadsAhead()
    backend.keeps_prompt_state = True
    warmed: list[GenerationRequest] = []

    async def warm(request: GenerationRequest) -> None:
        warmed.append(request)

    backend.warm = warm  # type: ignore[method-assign]
    manager = await build_manager(make_settings(backend={"kind": "scripted"}), backend=backend, counter=counter)
    try:
        await manager.switch_persona("console", "local", "captain brine")
        await settle(backend)
        await manager.handle(ChatEvent("console", "local", "you", "you", "ahoy", "m1", addresses_bot=True))
    finally:
        await close_manager(manager)
    (request,) = warmed
    assert "Captain Brine" in request.messages[0].content
    assert backend.requests[0].messages[0] == request.messages[0]  # the first reply starts with what was warmed


def test_the_resilient_wrapper_passes_reading_ahead_and_warming_through(settings) -> None:
    inner = ReadsAhead()
    inner.keeps_prompt_state = True
    wrapped = with_resilience(inner, settings)
    assert wrapped.keeps_prompt_state and wrapped.reads_ahead("twitch:stream")


# -- the real model ------------------------------------------------------------------------------


def _backend(cache: Path, token_counter):
    from engine.backends.llamacpp import LlamaCppBackend
    from engine.serving.model_store import find_smollm2_gguf

    backend = LlamaCppBackend(
        find_smollm2_gguf(),
        context_tokens=2048,
        threads=1,
        adapter_cache_dir=cache,
        counter=token_counter,
        saved_states_bytes=64 << 20,
    )
    backend.load()
    return backend


def _first_line(system: ChatMessage = SYSTEM) -> GenerationRequest:
    return GenerationRequest(
        messages=(system, ChatMessage("user", "ann: hi pip!")),
        max_tokens=8,
        temperature=0.0,
        conversation="console:local",
    )


@pytest.mark.model
async def test_a_restart_loads_the_evaluated_system_prompt_instead_of_evaluating_it(
    tmp_path: Path, token_counter
) -> None:
    first = _backend(tmp_path, token_counter)
    await first.warm(GenerationRequest(messages=(SYSTEM,), max_tokens=8, conversation="console:local"))
    await first.aclose()
    assert len(list((tmp_path / "llamacpp-states").glob("*.kvstate"))) == 1

    restarted = _backend(tmp_path, token_counter)
    system_tokens = len(restarted.prompt_tokens((SYSTEM,), opening_reply=False))
    stream = restarted.stream(_first_line())
    await stream.text()
    await restarted.aclose()
    assert stream.usage is not None and stream.usage.cached_prompt_tokens == system_tokens

    changed = _backend(tmp_path, token_counter)  # another card text: another state, evaluated afresh
    stream = changed.stream(_first_line(ChatMessage("system", SYSTEM.content + " Never spoil a story.")))
    await stream.text()
    await changed.aclose()
    assert stream.usage is not None and stream.usage.cached_prompt_tokens == 0
    assert len(list((tmp_path / "llamacpp-states").glob("*.kvstate"))) == 2
