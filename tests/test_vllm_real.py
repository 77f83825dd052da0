"""The serving path against the real vLLM (its CPU build), not the fake written here.

One server for the whole session, started from exactly the arguments `costar vllm-args` prints for
two personas with LoRA adapters (Pip and Captain Brine, bound to small adapters the suite builds
once): the server starting at all proves the generated flags are valid for vLLM. The shapes the
fake in tests/fake_vllm.py imitates (404 for an unknown adapter, 400 for a long prompt, SSE with a
usage-only chunk) are checked here against vLLM itself.

Start-up costs ~100 s on two quiet cores (more when the machine is busy); the tests after it take
a few seconds each. The server log is kept in .cache/vllm-tests/server.log and its tail is added
to every failing test's report.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

from bot.app import build_manager, close_manager, load_personas
from engine.backends.base import ChatMessage, GenerationRequest
from engine.backends.openai_backend import OpenAIBackend, RetryPolicy
from engine.backends.resilience import BreakerState, CircuitBreaker, ResilientBackend
from engine.backends.vllm_errors import AdaptersMissing, ErrorKind, classify, parse_error_body
from engine.errors import BackendUnavailable
from engine.events import ChatEvent
from engine.prompting.tokens import TokenizerCounter
from engine.settings import Settings
from tests.tiny_adapters import bind_test_adapters, build_lora
from tests.vllm_cpu import VLLM_LOG_KEY, VllmServer, costar_vllm_args, serve_vllm, unavailable_reason

pytestmark = [pytest.mark.vllm, pytest.mark.model, pytest.mark.slow, pytest.mark.timeout(1500)]

BASE = "smollm2"  # COSTAR_BACKEND_MODEL's default: the name costar requests the base model by
REPO = Path(__file__).resolve().parents[1]
LOG_PATH = REPO / ".cache" / "vllm-tests" / "server.log"  # kept after the session, for a look at failures


@dataclass(frozen=True, slots=True)
class Served:
    server: VllmServer
    args: list[str]  # what costar vllm-args printed
    cards_dir: Path
    spare_adapter: Path  # built but not served: for runtime loading


@pytest.fixture(scope="session")
def vllm(model_path: Path, pytestconfig: pytest.Config) -> Iterator[Served]:
    if reason := unavailable_reason():
        pytest.skip(reason)
    # Not pytest's tmp_path: it keeps only the last few sessions' folders, and other pytest runs on
    # the machine would delete the adapters under the running server.
    with tempfile.TemporaryDirectory(prefix="costar-vllm-") as scratch:
        root = Path(scratch)
        cards_dir = root / "cards"
        bind_test_adapters(cards_dir, model_path)
        spare = build_lora(model_path, root / "spare" / "rex", seed=3)
        args = costar_vllm_args({"COSTAR_PERSONAS_DIR": str(cards_dir)}, "--model", str(model_path))
        pytestconfig.stash[VLLM_LOG_KEY] = LOG_PATH
        with serve_vllm(args, LOG_PATH) as server:
            yield Served(server, args, cards_dir, spare)


@pytest.fixture
def openai_settings(vllm: Served, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        core={"personas_dir": str(vllm.cards_dir)},
        backend={"kind": "openai", "base_url": vllm.server.base_url, "model": BASE, "timeout_s": 300},
    )


def backend_for(vllm: Served, **options: Any) -> OpenAIBackend:
    options.setdefault("timeout_s", 300)
    options.setdefault("retry", RetryPolicy(attempts=2, backoff_s=0.2))
    return OpenAIBackend(vllm.server.base_url, default_model=BASE, **options)


def greeting_request(model: str | None, max_tokens: int = 16, **extra: Any) -> GenerationRequest:
    messages = (
        ChatMessage("system", "You are a co-host on a live stream. Answer in one short sentence."),
        ChatMessage("user", "Say hi to the stream and tell us your favourite game!"),
    )
    return GenerationRequest(messages=messages, max_tokens=max_tokens, temperature=0.0, model=model, **extra)


async def post_chat(vllm: Served, model: str, content: str, max_tokens: int = 16) -> httpx2.Response:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 0.8,
        "seed": 1234,
    }
    async with httpx2.AsyncClient(timeout=300) as client:
        return await client.post(f"{vllm.server.base_url}/chat/completions", json=body)


# -- start-up ---------------------------------------------------------------------------------


async def test_the_server_runs_the_flags_costar_vllm_args_printed_and_lists_each_adapter(vllm: Served) -> None:
    assert {"--enable-lora", "--enable-prefix-caching"} <= set(vllm.args)
    assert vllm.args[vllm.args.index("--max-loras") + 1] == "2"
    async with httpx2.AsyncClient(timeout=60) as client:
        cards = (await client.get(f"{vllm.server.base_url}/models")).json()["data"]
    parents = {card["id"]: card.get("parent") for card in cards}
    # A subset: an adapter loaded at runtime by a later test is listed too.
    assert {BASE: None, "pip-lora": BASE, "brine-lora": BASE}.items() <= parents.items()


async def test_the_startup_check_passes_for_the_personas_the_server_was_started_for(openai_settings: Settings) -> None:
    backend = OpenAIBackend.from_settings(openai_settings, load_personas(openai_settings))
    try:
        await backend.start()
    finally:
        await backend.aclose()


async def test_the_startup_check_names_an_adapter_the_server_does_not_serve(
    vllm: Served, openai_settings: Settings
) -> None:
    rex = {"name": "Rex", "model": {"adapter": {"name": "rex-unserved-lora", "path": str(vllm.spare_adapter)}}}
    (vllm.cards_dir.parent / "more").mkdir(exist_ok=True)
    (vllm.cards_dir.parent / "more" / "rex.yaml").write_text(yaml.safe_dump(rex), encoding="utf-8")
    settings = openai_settings.model_copy(
        update={"core": openai_settings.core.model_copy(update={"personas_dir": vllm.cards_dir.parent / "more"})}
    )
    backend = OpenAIBackend.from_settings(settings, load_personas(settings))
    with pytest.raises(AdaptersMissing) as raised:
        await backend.start()
    await backend.aclose()
    assert raised.value.missing == {"rex-unserved-lora": "rex"}
    assert "rex-unserved-lora (persona rex)" in str(raised.value) and "costar vllm-args" in str(raised.value)


# -- replies ------------------------------------------------------------------------------------


async def test_each_persona_is_answered_by_its_own_adapter(vllm: Served) -> None:
    texts: dict[str, str] = {}
    for model in (BASE, "pip-lora", "brine-lora"):
        response = await post_chat(vllm, model, "Say hi to the stream and tell us your favourite game!")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"] == model
        texts[model] = body["choices"][0]["message"]["content"]
    again = (await post_chat(vllm, "pip-lora", "Say hi to the stream and tell us your favourite game!")).json()
    # The same seed gives the same reply, so different replies come from different weights.
    assert again["choices"][0]["message"]["content"] == texts["pip-lora"]
    assert len(set(texts.values())) == 3, texts


async def test_a_chat_line_gets_a_reply_through_the_bot_from_the_channels_persona(
    openai_settings: Settings, model_path: Path
) -> None:
    backend = openai_settings.backend.model_copy(update={"tokenizer": str(model_path / "tokenizer.json")})
    manager = await build_manager(openai_settings.model_copy(update={"backend": backend}))
    try:
        await manager.switch_persona("twitch", "brine-channel", "captain-brine")
        event = ChatEvent(
            platform="twitch",
            channel_id="brine-channel",
            author_id="u1",
            author_name="mira",
            text="captain, should we attack now?",
            addresses_bot=True,
        )
        reply = await manager.handle(event)
    finally:
        await close_manager(manager)
    assert reply is not None and reply.text.strip()
    assert reply.persona_id == "captain-brine"
    # The prompt budget never under-counts what the server reads, so prompts stay inside its window.
    assert reply.usage is not None and reply.usage.prompt_tokens is not None
    assert reply.prompt_tokens >= reply.usage.prompt_tokens


async def test_an_unknown_adapter_gets_a_real_404_and_is_then_loaded_at_runtime(vllm: Served) -> None:
    response = await post_chat(vllm, "rex-lora", "hello")
    error = parse_error_body(response.text, status=response.status_code)
    assert response.status_code == 404 and classify(error) is ErrorKind.MODEL_NOT_FOUND, response.text

    backend = backend_for(vllm, runtime_lora_loading=True, adapters={"rex-lora": str(vllm.spare_adapter)})
    try:
        text = await backend.complete(greeting_request("rex-lora"))
        served = await backend.served_models()
    finally:
        await backend.aclose()
    assert text.strip()
    assert "rex-lora" in served
    assert (await post_chat(vllm, "rex-lora", "hello")).json()["model"] == "rex-lora"


async def test_a_prompt_over_the_context_window_is_refused_in_vllms_shape_and_retried_shorter(
    vllm: Served,
) -> None:
    too_long = "chat chat chat " * 1500  # ~4,500 tokens; the server's --max-model-len is 2048
    response = await post_chat(vllm, "pip-lora", too_long)
    error = parse_error_body(response.text, status=response.status_code)
    assert response.status_code == 400 and classify(error) is ErrorKind.CONTEXT_TOO_LONG, response.text

    shortened: list[GenerationRequest] = []

    def shorten() -> GenerationRequest:
        shortened.append(greeting_request("pip-lora"))
        return shortened[-1]

    long_request = GenerationRequest(
        messages=(ChatMessage("user", too_long),), max_tokens=16, model="pip-lora", shorten=shorten
    )
    backend = backend_for(vllm)
    try:
        text = await backend.complete(long_request)
    finally:
        await backend.aclose()
    assert len(shortened) == 1 and text.strip()


async def test_a_streamed_reply_arrives_in_chunks_with_usage_counted_like_costar_counts(
    vllm: Served, model_path: Path
) -> None:
    request = greeting_request("brine-lora", max_tokens=12)
    backend = backend_for(vllm)
    try:
        stream = backend.stream(request)
        chunks = [chunk async for chunk in stream]
    finally:
        await backend.aclose()
    assert len(chunks) >= 2 and "".join(chunks).strip()
    assert stream.usage is not None and stream.usage.completion_tokens is not None
    assert 0 < stream.usage.completion_tokens <= 12
    assert stream.finish_reason in {"length", "stop"}
    # The prompt the server counted is the one costar's tokenizer and chat template produce.
    assert stream.usage.prompt_tokens == rendered_tokens(model_path, request.messages)


def rendered_tokens(model_path: Path, messages: tuple[ChatMessage, ...]) -> int:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    source = (model_path / "chat_template.jinja").read_text(encoding="utf-8")
    template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(source)
    text = template.render(messages=[m.as_dict() for m in messages], add_generation_prompt=True)
    return TokenizerCounter(model_path / "tokenizer.json").count(text)


# -- a failing server ---------------------------------------------------------------------------


def state_of(breaker: CircuitBreaker) -> BreakerState:
    return breaker.state  # read afresh each time: it changes with the clock


async def test_the_circuit_opens_while_the_server_is_frozen_and_closes_when_it_is_back(vllm: Served) -> None:
    # A frozen server (SIGSTOP to its whole process group) accepts connections and never answers:
    # the hang of an overloaded or wedged engine. Restarting vLLM instead would cost ~100 s here,
    # and connection-refused is covered against the fake in tests/test_resilience_http.py.
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=3.0)
    inner = backend_for(vllm, timeout_s=60, retry=RetryPolicy(attempts=1))
    backend = ResilientBackend(inner, breaker=breaker, first_chunk_timeout_s=4.0, idle_timeout_s=4.0)
    try:
        vllm.server.pause()
        try:
            for _ in range(2):
                with pytest.raises(BackendUnavailable):
                    await backend.complete(greeting_request("pip-lora", max_tokens=4))
            assert state_of(breaker) is BreakerState.OPEN
            started = time.monotonic()
            with pytest.raises(BackendUnavailable, match="circuit open"):
                await backend.complete(greeting_request("pip-lora", max_tokens=4))
            assert time.monotonic() - started < 1.0  # failing fast: the server is not even asked
        finally:
            vllm.server.resume()
        await asyncio.sleep(3.0)
        backend.first_chunk_timeout_s = 120.0  # the thawed server first finishes the abandoned requests
        text = await backend.complete(greeting_request("pip-lora", max_tokens=4))
    finally:
        await backend.aclose()
    assert text.strip()
    assert state_of(breaker) is BreakerState.CLOSED
    assert (breaker.counts["opened"], breaker.counts["closed"], breaker.counts["rejected"]) == (1, 1, 1)


async def test_the_server_counts_prefix_cache_hits_for_a_repeated_persona_prompt(vllm: Served) -> None:
    before = await asyncio.to_thread(vllm.server.metrics)
    prompt = "Tell me about the overlay. " * 40  # several full blocks, the same bytes twice
    for _ in range(2):
        await post_chat(vllm, "pip-lora", prompt, max_tokens=2)
    after = await asyncio.to_thread(vllm.server.metrics)
    hits = after["vllm:prefix_cache_hits_total"] - before.get("vllm:prefix_cache_hits_total", 0.0)
    assert hits > 0, json.dumps({k: v for k, v in after.items() if "prefix" in k})
