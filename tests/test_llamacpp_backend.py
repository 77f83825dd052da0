"""The llama.cpp backend: the packaged SmolLM2 GGUF, streamed from a worker thread, prefixes kept warm."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from bot.app import build_manager
from engine.backends.base import ChatMessage, GenerationRequest
from engine.backends.cpu_routing import CpuBackends
from engine.backends.llama_states import shared_prefix
from engine.backends.llamacpp import LlamaCppBackend
from engine.backends.scripted import ScriptedBackend
from engine.errors import BackendUnavailable, SettingsError
from engine.events import ChatEvent
from engine.prompting.tokens import ApproxTokenCounter, GgufVocabCounter, template_allowance
from engine.serving.model_store import find_smollm2_gguf
from engine.settings import CoreSettings
from personas.card import PersonaCard
from personas.registry import PersonaRegistry

pytestmark = pytest.mark.model

SYSTEM = ChatMessage("system", "You are Pip, a cheerful co-host of a cooking stream. Keep replies short.")
LONG_STORY = ChatMessage("user", "ann: write a very long story about a dragon who learns to cook, with many chapters")


def _request(*messages: ChatMessage, max_tokens: int = 24, **options) -> GenerationRequest:
    chat = messages or (ChatMessage("user", "ann: hi Pip, how are you?"),)
    return GenerationRequest(
        messages=(SYSTEM, *chat), max_tokens=max_tokens, temperature=options.pop("temperature", 0.0), **options
    )


def _fresh_backend(prefix_cache_bytes: int = 256 << 20) -> LlamaCppBackend:
    backend = LlamaCppBackend(
        find_smollm2_gguf(),
        context_tokens=2048,
        threads=1,  # a second spinning thread is many times slower when other work shares the cores
        prefix_cache_bytes=prefix_cache_bytes,
        adapter_cache_dir=CoreSettings().cache_dir,
    )
    backend.load()
    return backend


async def _decoded_after(backend: LlamaCppBackend, request: GenerationRequest) -> int:
    """Tokens the context holds beyond the prompt once the worker thread is idle again."""
    await asyncio.get_running_loop().run_in_executor(backend._executor, lambda: None)
    return backend.llm.n_tokens - len(backend.prompt_tokens(request.messages))


async def test_streams_several_chunks_and_reports_usage(llamacpp_backend) -> None:
    stream = llamacpp_backend.stream(_request())
    chunks = [chunk async for chunk in stream]
    assert len(chunks) > 1 and "".join(chunks).strip()
    assert stream.usage is not None and stream.usage.prompt_tokens > 10 and 0 < stream.usage.completion_tokens <= 24
    assert stream.finish_reason in ("stop", "length")


async def test_generation_does_not_block_the_event_loop(llamacpp_backend) -> None:
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    beat = asyncio.create_task(heartbeat())
    await llamacpp_backend.complete(_request(max_tokens=32))
    beat.cancel()
    assert ticks > 3
    assert threading.current_thread() is threading.main_thread()


async def test_a_stop_sequence_ends_the_reply_before_it(llamacpp_backend) -> None:
    full = await llamacpp_backend.complete(_request(max_tokens=40))
    words = full.split()
    assert len(words) > 4, full
    stop = " " + words[3]
    stream = llamacpp_backend.stream(_request(max_tokens=40, stop=(stop,)))
    cut = await stream.text()
    assert cut == full[: full.index(stop)]
    assert stream.finish_reason == "stop"


async def test_the_same_seed_samples_the_same_reply_and_another_seed_another(llamacpp_backend) -> None:
    first = await llamacpp_backend.complete(_request(max_tokens=32, temperature=1.0, seed=7))
    again = await llamacpp_backend.complete(_request(max_tokens=32, temperature=1.0, seed=7))
    other = await llamacpp_backend.complete(_request(max_tokens=32, temperature=1.0, seed=8))
    assert first == again
    assert other != first


async def test_closing_the_stream_stops_decoding_at_once(llamacpp_backend) -> None:
    request = _request(LONG_STORY, max_tokens=300)  # greedy, this story runs to the full 300 tokens
    stream = llamacpp_backend.stream(request)
    async for _chunk in stream:
        break
    await stream.aclose()
    assert await _decoded_after(llamacpp_backend, request) < 30


async def test_a_reply_that_times_out_stops_decoding(
    make_settings, counter, llamacpp_backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = await build_manager(make_settings(backend={"timeout_s": 0.2}), backend=llamacpp_backend, counter=counter)
    sent: list[GenerationRequest] = []
    stream = llamacpp_backend.stream

    def recording_stream(request: GenerationRequest):
        sent.append(request)
        return stream(request)

    monkeypatch.setattr(llamacpp_backend, "stream", recording_stream)
    text = LONG_STORY.content.removeprefix("ann: ")
    event = ChatEvent("console", "c1", "ann", "ann", text, "m1", addresses_bot=True)
    try:
        with pytest.raises(BackendUnavailable):
            async for _snapshot in manager.reply_stream(await manager.hear(event)):
                pass
    finally:
        await manager.memory.close()
    assert await _decoded_after(llamacpp_backend, sent[-1]) < 10  # of Pip's 96


async def test_greedy_decoding_is_reproducible(llamacpp_backend) -> None:
    assert await llamacpp_backend.complete(_request()) == await llamacpp_backend.complete(_request())


# -- prefix kept warm ---------------------------------------------------------------------------


def _turns(channel: str, count: int) -> list[GenerationRequest]:
    """A growing chat: each prompt is the previous one plus a reply and a new line."""
    history: list[ChatMessage] = []
    requests = []
    for number in range(count):
        history.append(ChatMessage("user", f"{channel}{number}: tell me about the {channel} dish number {number}"))
        requests.append(_request(*history, max_tokens=12, conversation=channel))
        history.append(ChatMessage("assistant", f"Dish {number} is lovely, {channel}{number}!"))
    return requests


async def test_the_next_turn_of_a_channel_evaluates_only_its_new_tokens() -> None:
    backend = _fresh_backend()
    first, second = _turns("ann", 2)
    stream = backend.stream(first)
    await stream.text()
    stream = backend.stream(second)
    await stream.text()
    assert stream.usage is not None and stream.usage.cached_prompt_tokens is not None
    assert stream.usage.cached_prompt_tokens >= len(backend.prompt_tokens(first.messages)) - 1


async def test_interleaved_channels_each_resume_from_their_own_parked_state() -> None:
    backend = _fresh_backend()
    ann, bob = _turns("ann", 2), _turns("bob", 2)
    for request in (ann[0], bob[0]):
        await backend.complete(request)
    stream = backend.stream(ann[1])  # bob holds the context now: ann's state comes back from memory
    warm_reply = await stream.text()
    assert stream.usage is not None and stream.usage.cached_prompt_tokens is not None
    assert stream.usage.cached_prompt_tokens >= len(backend.prompt_tokens(ann[0].messages)) - 1
    cold = _fresh_backend(prefix_cache_bytes=0)
    assert await cold.complete(ann[1]) == warm_reply  # a restored state continues exactly as a fresh one


async def test_without_room_for_parked_states_a_returning_channel_starts_cold() -> None:
    backend = _fresh_backend(prefix_cache_bytes=0)
    ann, bob = _turns("ann", 2), _turns("bob", 2)
    for request in (ann[0], bob[0]):
        await backend.complete(request)
    stream = backend.stream(ann[1])
    await stream.text()
    assert stream.usage is not None
    # Only what ann's prompt shares with bob's, still in the context: the persona prompt.
    shared = shared_prefix(backend.prompt_tokens(bob[0].messages), backend.prompt_tokens(ann[1].messages))
    assert stream.usage.cached_prompt_tokens == shared < len(backend.prompt_tokens(ann[0].messages)) - 8


# -- reading ahead ------------------------------------------------------------------------------


def _chat_since(request: GenerationRequest, reply: str, lines: int) -> tuple[ChatMessage, ...]:
    """The conversation after ``request``'s reply, with ``lines`` more chat lines."""
    said = tuple(ChatMessage("user", f"viewer{n}: the soup on stream looks great, number {n}") for n in range(lines))
    return (*request.messages, ChatMessage("assistant", reply), *said)


async def test_chat_read_ahead_is_not_evaluated_again_and_does_not_change_the_reply() -> None:
    backend = _fresh_backend()
    first = _turns("ann", 1)[0]
    chat = _chat_since(first, await backend.complete(first), lines=6)
    await backend.read_ahead(replace(first, messages=chat))
    prefix = backend.prompt_tokens(chat, opening_reply=False)
    assert backend.llm.input_ids[: backend.llm.n_tokens].tolist() == prefix and backend.tokens_read_ahead > 0

    question = replace(first, messages=(*chat, ChatMessage("user", "ann: so what is in it?")))
    stream = backend.stream(question)
    warm_reply = await stream.text()
    assert stream.usage is not None and stream.usage.cached_prompt_tokens == len(prefix)
    # The same turns without reading ahead: the reply's own tokens were evaluated one by one while it
    # was decoded, which a cold start would do in one batch (a different rounding, another greedy pick).
    unread = _fresh_backend()
    await unread.complete(first)
    assert await unread.complete(question) == warm_reply


async def test_reading_ahead_gives_way_to_a_reply_within_a_slice() -> None:
    backend = _fresh_backend()
    first = _turns("ann", 1)[0]
    chat = _chat_since(first, await backend.complete(first), lines=60)  # seconds of prompt evaluation
    reading = asyncio.create_task(backend.read_ahead(replace(first, messages=chat)))
    while backend.tokens_read_ahead == 0:
        await asyncio.sleep(0.01)
    await backend.complete(_turns("ann", 1)[0])
    await reading
    assert backend.tokens_read_ahead < len(backend.prompt_tokens(chat, opening_reply=False)) // 2


async def test_only_the_conversation_holding_the_context_is_read_ahead() -> None:
    backend = _fresh_backend()
    ann, bob = _turns("ann", 1)[0], _turns("bob", 1)[0]
    assert backend.reads_ahead("ann") and backend.reads_ahead("bob")  # an empty context: the first to chat
    await backend.complete(ann)
    assert backend.reads_ahead("ann") and not backend.reads_ahead("bob")
    await backend.read_ahead(replace(bob, messages=_chat_since(bob, "Hi bob!", lines=3)))
    assert backend.tokens_read_ahead == 0
    stream = backend.stream(_turns("ann", 2)[1])  # ann's context was neither parked nor changed
    await stream.text()
    assert stream.usage is not None and stream.usage.cached_prompt_tokens is not None
    assert stream.usage.cached_prompt_tokens >= len(backend.prompt_tokens(ann.messages)) - 1


# -- counting exactly ---------------------------------------------------------------------------


def test_the_gguf_vocabulary_counts_like_the_tokenizer_the_builder_uses(token_counter) -> None:
    gguf_counter = GgufVocabCounter(find_smollm2_gguf())
    for text in ("hello Pip!", "naïve café — 🎉🎉", "<|im_end|> is text here", "  two  spaces\nand a line"):
        assert gguf_counter.count(text) == token_counter.count(text)


def test_the_gguf_chat_template_fits_what_the_builder_reserves(llamacpp_backend, token_counter) -> None:
    messages = _turns("ann", 3)[-1].messages
    assert len(llamacpp_backend.prompt_tokens(messages)) <= template_allowance(token_counter, messages)


def test_a_counter_that_disagrees_with_the_gguf_is_refused(llamacpp_backend) -> None:
    with pytest.raises(SettingsError, match="COSTAR_BACKEND_TOKENIZER"):
        llamacpp_backend.check_counter(ApproxTokenCounter())


def test_a_missing_model_file_is_a_clear_settings_error(tmp_path: Path) -> None:
    backend = LlamaCppBackend(tmp_path / "none.gguf", context_tokens=2048, adapter_cache_dir=tmp_path)
    with pytest.raises(SettingsError, match=r"no GGUF model at .*none\.gguf"):
        backend.load()


# -- which backend a persona runs on ------------------------------------------------------------


def _persona_with_adapter(folder: Path, name: str, peft_type: str) -> PersonaCard:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": peft_type, "r": 8}), encoding="utf-8")
    return PersonaCard.model_validate(
        {"name": name, "model": {"adapter": {"name": f"{name.lower()}-adapter", "path": str(folder)}}}
    )


async def test_prompt_tuning_personas_run_on_transformers_and_the_start_log_says_where_each_runs(
    llamacpp_backend, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    personas = PersonaRegistry()
    personas.add(_persona_with_adapter(tmp_path / "pt", "Tuned", "PROMPT_TUNING"))
    personas.add(_persona_with_adapter(tmp_path / "lora", "Lora", "LORA"))
    personas.add(PersonaCard.model_validate({"name": "Plain"}))
    transformers = ScriptedBackend(default="from transformers")
    router = CpuBackends(llamacpp_backend, lambda: transformers, personas)

    with caplog.at_level(logging.INFO, logger="engine.backends.cpu_routing"):
        await router.start()

    assert router.backend_for(str(tmp_path / "pt")) is transformers
    assert router.backend_for(str(tmp_path / "lora")) is llamacpp_backend
    assert router.backend_for(None) is llamacpp_backend
    said = caplog.text
    assert "Persona tuned runs on transformers (PROMPT_TUNING adapter" in said
    assert "Persona lora runs on llama.cpp (SmolLM2-135M-Instruct.Q4_1.gguf with LoRA adapter lora)" in said
    assert "Persona plain runs on llama.cpp (SmolLM2-135M-Instruct.Q4_1.gguf)" in said


async def test_the_recent_words_penalty_keeps_a_phrase_of_the_last_replies_from_coming_back(llamacpp_backend) -> None:
    """llama.cpp's own penalties see only the reply being written; a tic copied from the history
    ("I'm honored" in most of Pip's replies) needs the words of earlier replies penalised."""
    honored = (
        ChatMessage("user", "ann: hi pip"),
        ChatMessage("assistant", "I'm honored, ann."),
        ChatMessage("user", "cy: hello pip"),
        ChatMessage("assistant", "I'm honored, cy."),
        ChatMessage("user", "dee: hey pip"),
        ChatMessage("assistant", "I'm honored, dee."),
        ChatMessage("user", "eve: hi pip!"),
    )
    # Pip's sampling (temperature 0.3): the bias is taken off before the temperature divides the logits.
    copied = await llamacpp_backend.complete(_request(*honored, max_tokens=12, temperature=0.3, seed=7))
    penalised = await llamacpp_backend.complete(
        _request(*honored, max_tokens=12, temperature=0.3, seed=7, recent_words_penalty=3.0)
    )
    assert "honored" in copied.lower()  # the tic the history teaches
    assert "honored" not in penalised.lower() and penalised.strip()
