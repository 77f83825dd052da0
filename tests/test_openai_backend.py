"""The OpenAI-compatible backend against a local fake of vLLM's LoRA surface (tests/fake_vllm.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from engine.backends.base import ChatMessage, GenerationRequest
from engine.backends.openai_backend import OpenAIBackend, RetryPolicy
from engine.backends.vllm_errors import AdaptersMissing, ErrorKind, classify, parse_error_body
from engine.errors import BackendError, BackendUnavailable, ContextTooLong, ModelNotFound
from engine.observability.metrics import Metrics
from tests.fake_vllm import FakeVllm, Fault, flat_error, nested_error

BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"
FAST_RETRY = RetryPolicy(attempts=3, backoff_s=0.01)
REPO = Path(__file__).resolve().parents[1]


def chat_request(model: str | None = "pip-lora", *, history: int = 1, **fields: object) -> GenerationRequest:
    lines = tuple(ChatMessage("user", f"viewer line {i}: what game is this?") for i in range(history))
    return GenerationRequest(
        messages=(ChatMessage("system", "You are Pip."), *lines),
        max_tokens=32,
        model=model,
        **fields,  # type: ignore[arg-type]
    )


def shortenable(request: GenerationRequest, keep: int) -> GenerationRequest:
    """A request whose shorten() keeps the system line and the last ``keep`` lines, like the prompt builder."""
    shorter = GenerationRequest(
        messages=(request.messages[0], *request.messages[-keep:]), max_tokens=request.max_tokens, model=request.model
    )
    return GenerationRequest(
        messages=request.messages, max_tokens=request.max_tokens, model=request.model, shorten=lambda: shorter
    )


@pytest_asyncio.fixture(loop_scope="function")
async def fake() -> AsyncIterator[FakeVllm]:
    async with FakeVllm(BASE, adapters={"pip-lora": "/adapters/pip"}) as server:
        yield server


def backend_for(fake: FakeVllm, **options: object) -> OpenAIBackend:
    return OpenAIBackend(fake.base_url, default_model=BASE, retry=FAST_RETRY, timeout_s=10, **options)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- happy path -------------------------------------------------------------------------------


async def test_streamed_reply_names_the_adapter_and_always_sets_max_tokens_and_usage(fake: FakeVllm) -> None:
    backend = backend_for(fake)
    stream = backend.stream(chat_request(stop=("\nviewer:",)))
    chunks = [chunk async for chunk in stream]
    await backend.aclose()

    assert "".join(chunks) == "Hello there, friend of the stream!"
    assert len(chunks) > 1
    sent = fake.completions()[0]
    assert sent["model"] == "pip-lora"
    assert sent["max_tokens"] == 32
    assert sent["stop"] == ["\nviewer:"]
    assert sent["stream_options"] == {"include_usage": True}
    assert stream.usage is not None and stream.usage.completion_tokens == 6
    assert stream.finish_reason == "stop"


async def test_request_without_adapter_uses_the_base_model(fake: FakeVllm) -> None:
    backend = backend_for(fake)
    await backend.complete(chat_request(model=None))
    await backend.aclose()
    assert fake.completions()[0]["model"] == BASE


async def test_non_streamed_reply_arrives_whole_with_usage(fake: FakeVllm) -> None:
    backend = backend_for(fake)
    stream = backend.generate(chat_request(), streaming=False)
    chunks = [chunk async for chunk in stream]
    await backend.aclose()
    assert chunks == ["Hello there, friend of the stream!"]
    assert fake.completions()[0]["stream"] is False
    assert stream.usage is not None and stream.usage.prompt_tokens is not None


# -- startup check ----------------------------------------------------------------------------


async def test_startup_check_passes_when_every_persona_adapter_is_served(fake: FakeVllm) -> None:
    backend = backend_for(fake, expected_models={"pip-lora": "pip", BASE: "narrator"})
    await backend.start()
    assert set(await backend.served_models()) == {BASE, "pip-lora"}
    await backend.aclose()


async def test_startup_check_names_missing_adapter_and_how_to_fix_it(fake: FakeVllm) -> None:
    backend = backend_for(fake, expected_models={"pip-lora": "pip", "rex-lora": "rex"})
    with pytest.raises(AdaptersMissing) as caught:
        await backend.start()
    await backend.aclose()
    assert caught.value.missing == {"rex-lora": "rex"}
    assert "rex-lora (persona rex)" in str(caught.value)
    assert "costar vllm-args" in str(caught.value)


async def test_startup_check_loads_missing_adapters_when_runtime_loading_is_on(fake: FakeVllm) -> None:
    fake.runtime_loading = True
    backend = backend_for(
        fake, expected_models={"rex-lora": "rex"}, adapters={"rex-lora": "/adapters/rex"}, runtime_lora_loading=True
    )
    await backend.start()
    await backend.aclose()
    assert fake.adapters["rex-lora"] == "/adapters/rex"


# -- error mapping ----------------------------------------------------------------------------


async def test_unknown_adapter_is_loaded_at_runtime_then_the_request_retried(fake: FakeVllm) -> None:
    fake.runtime_loading = True
    backend = backend_for(fake, runtime_lora_loading=True, server_adapter_dir="/srv/adapters")
    text = await backend.stream(chat_request("rex-lora", adapter_path="/home/me/adapters/rex")).text()
    await backend.aclose()

    assert text == "Hello there, friend of the stream!"
    paths = [r.path for r in fake.requests]
    assert paths == ["/v1/chat/completions", "/v1/load_lora_adapter", "/v1/chat/completions"]
    assert fake.requests[1].body == {"lora_name": "rex-lora", "lora_path": "/srv/adapters/rex"}


async def test_unknown_adapter_without_runtime_loading_is_model_not_found(fake: FakeVllm) -> None:
    backend = backend_for(fake)
    with pytest.raises(ModelNotFound) as caught:
        await backend.complete(chat_request("rex-lora", adapter_path="/adapters/rex"))
    await backend.aclose()
    assert caught.value.model == "rex-lora"
    assert "does not exist" in str(caught.value)
    assert len(fake.completions()) == 1


async def test_context_too_long_retries_once_with_the_shortened_prompt(fake: FakeVllm) -> None:
    fake.max_prompt_chars = 200
    backend = backend_for(fake)
    text = await backend.stream(shortenable(chat_request(history=12), keep=2)).text()
    await backend.aclose()

    first, second = fake.completions()
    assert text
    assert len(first["messages"]) == 13
    assert len(second["messages"]) == 3
    assert second["messages"][0]["content"] == "You are Pip."


async def test_context_too_long_after_shortening_is_context_too_long(fake: FakeVllm) -> None:
    fake.max_prompt_chars = 10
    backend = backend_for(fake)
    with pytest.raises(ContextTooLong):
        await backend.complete(shortenable(chat_request(history=12), keep=2))
    await backend.aclose()
    assert len(fake.completions()) == 2


async def test_503_then_success_is_retried(fake: FakeVllm) -> None:
    metrics = Metrics()
    fake.fail_next(Fault(503), Fault(503))
    backend = backend_for(fake, metrics=metrics)
    text = await backend.stream(chat_request()).text()
    await backend.aclose()
    assert text == "Hello there, friend of the stream!"
    assert len(fake.completions()) == 3
    assert metrics.registry.get_sample_value("costar_backend_retries_total", {"kind": "unavailable"}) == 2


async def test_503_every_time_gives_up_with_backend_unavailable(fake: FakeVllm) -> None:
    fake.fail_next(*[Fault(503)] * 5)
    backend = backend_for(fake)
    with pytest.raises(BackendUnavailable):
        await backend.complete(chat_request())
    await backend.aclose()
    assert len(fake.completions()) == FAST_RETRY.attempts


async def test_connection_refused_is_backend_unavailable() -> None:
    backend = OpenAIBackend(f"http://127.0.0.1:{free_port()}/v1", default_model=BASE, retry=FAST_RETRY)
    with pytest.raises(BackendUnavailable):
        await backend.complete(chat_request())
    await backend.aclose()


async def test_error_event_inside_the_stream_is_a_backend_error(fake: FakeVllm) -> None:
    fake.fail_next(Fault(midstream_after=2, body=nested_error("CUDA out of memory", "InternalServerError", 500)))
    backend = backend_for(fake)
    received: list[str] = []
    with pytest.raises(BackendError, match="CUDA out of memory"):
        async for chunk in backend.stream(chat_request()):
            received.append(chunk)
    await backend.aclose()
    assert "".join(received) == "Hello there,"
    assert len(fake.completions()) == 1  # text already went out: no retry


async def test_flat_error_event_inside_the_stream_is_a_backend_error(fake: FakeVllm) -> None:
    fake.fail_next(Fault(midstream_after=1, body=flat_error("engine dead", "InternalServerError", 500)))
    backend = backend_for(fake)
    with pytest.raises(BackendError, match="engine dead"):
        await backend.stream(chat_request()).text()
    await backend.aclose()


async def test_flat_404_shape_from_older_servers_is_model_not_found(fake: FakeVllm) -> None:
    fake.fail_next(Fault(404, flat_error("The model `pip-lora` does not exist.", "NotFoundError", 404, "model")))
    backend = backend_for(fake)
    with pytest.raises(ModelNotFound, match="does not exist"):
        await backend.complete(chat_request())
    await backend.aclose()


async def test_flat_context_error_shape_also_triggers_the_shortened_retry(fake: FakeVllm) -> None:
    message = "This model's maximum context length is 2048 tokens. However, you requested 4000 tokens."
    fake.fail_next(Fault(400, flat_error(message, "BadRequestError", 400)))
    backend = backend_for(fake)
    await backend.complete(shortenable(chat_request(history=5), keep=1))
    await backend.aclose()
    assert [len(body["messages"]) for body in fake.completions()] == [6, 2]


# -- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        (nested_error("The model `x` does not exist.", "NotFoundError", 404, "model"), 404, ErrorKind.MODEL_NOT_FOUND),
        (flat_error("The model `x` does not exist.", "NotFoundError", 404), 404, ErrorKind.MODEL_NOT_FOUND),
        (nested_error("too many", "BadRequestError", 400, "max_tokens"), 400, ErrorKind.CONTEXT_TOO_LONG),
        (flat_error("bad temperature", "BadRequestError", 400, "temperature"), 400, ErrorKind.OTHER),
        ('{"detail": "Not Found"}', 404, ErrorKind.OTHER),
        ("Service Unavailable", 503, ErrorKind.UNAVAILABLE),
    ],
)
def test_both_vllm_error_shapes_are_classified(body: object, status: int, kind: ErrorKind) -> None:
    assert classify(parse_error_body(body, status=status)) is kind


def test_parsed_error_keeps_message_param_and_code() -> None:
    parsed = parse_error_body(flat_error("nope", "NotFoundError", 404, "model"))
    assert (parsed.message, parsed.type, parsed.param, parsed.code, parsed.status) == (
        "nope",
        "NotFoundError",
        "model",
        "404",
        404,
    )


# -- deployment -------------------------------------------------------------------------------


def test_bot_with_the_remote_backend_never_imports_torch(tmp_path: Path) -> None:
    """The Dockerfile installs no torch: building the whole bot for kind=openai must not need it."""
    script = (
        "import asyncio, sys\n"
        "from bot.app import build_manager, close_manager\n"
        "from engine.settings import load_settings\n"
        f"settings = load_settings(None, core={{'data_dir': {str(tmp_path)!r}}},\n"
        "                         backend={'kind': 'openai', 'base_url': 'http://127.0.0.1:9/v1'})\n"
        "async def main():\n"
        "    manager = await build_manager(settings)\n"
        "    print(type(getattr(manager.backend, 'inner', manager.backend)).__name__)\n"
        "    await close_manager(manager)\n"
        "asyncio.run(main())\n"
        "heavy = sorted(name for name in ('torch', 'transformers', 'peft', 'llama_cpp') if name in sys.modules)\n"
        "print('heavy:', heavy)\n"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("COSTAR_")}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["OpenAIBackend", "heavy:", "[]"]


async def test_backend_from_settings_checks_the_installed_personas_models(fake: FakeVllm, tmp_path: Path) -> None:
    from engine.settings import load_settings
    from personas.card import PersonaCard
    from personas.registry import PersonaRegistry

    registry = PersonaRegistry()
    registry.add(PersonaCard(name="Pip"))
    registry.add(PersonaCard(name="Rex", model={"adapter": {"name": "rex-lora", "path": "/adapters/rex"}}))
    settings = load_settings(
        None,
        core={"data_dir": tmp_path},
        backend={"kind": "openai", "base_url": fake.base_url, "model": BASE, "retry_attempts": 1},
    )
    backend = OpenAIBackend.from_settings(settings, registry)
    with pytest.raises(AdaptersMissing) as caught:
        await backend.start()
    await backend.aclose()
    assert caught.value.missing == {"rex-lora": "rex"}  # the base model (Pip's) is served


# -- what a new user meets ----------------------------------------------------------------------


async def test_the_personas_repetition_penalty_is_sent_as_the_portable_frequency_penalty(fake: FakeVllm) -> None:
    backend = backend_for(fake)
    await backend.complete(chat_request(repetition_penalty=1.1))
    await backend.complete(chat_request(repetition_penalty=1.0))
    await backend.aclose()
    penalised, plain = fake.completions()
    assert penalised["frequency_penalty"] == pytest.approx(0.1)
    assert "repetition_penalty" not in penalised  # transformers serve refuses unknown fields with 422
    assert "frequency_penalty" not in plain


def test_a_base_url_without_a_scheme_is_refused_with_the_likely_fix() -> None:
    from engine.errors import SettingsError
    from engine.settings import load_settings

    with pytest.raises(
        SettingsError, match=r"'localhost:8011' needs a scheme; did you mean 'http://localhost:8011/v1'\?"
    ):
        load_settings(None, backend={"kind": "openai", "base_url": "localhost:8011"})


async def test_a_base_url_without_v1_names_the_url_and_the_fix(fake: FakeVllm) -> None:
    root = fake.base_url.removesuffix("/v1")
    backend = OpenAIBackend(root, default_model=BASE, retry=FAST_RETRY, timeout_s=10)
    with pytest.raises(
        BackendError, match=rf"HTTP 404.* at {root}/?: no such endpoint; .*ends in /v1, e\.g\. {root}/v1"
    ):
        await backend.complete(chat_request(model=None))
    await backend.aclose()


async def test_an_unreachable_server_is_named_with_the_setting_to_check() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    backend = OpenAIBackend(url, default_model=BASE, retry=FAST_RETRY)
    with pytest.raises(BackendUnavailable, match=rf"model server at {url}/? unavailable .*COSTAR_BACKEND_BASE_URL"):
        await backend.complete(chat_request())
    await backend.aclose()


async def test_a_server_pinned_to_one_model_says_which_persona_adapter_it_refused(fake: FakeVllm) -> None:
    pinned = {"detail": "Server is pinned to 'smollm2'; requested 'pip-lora'."}
    fake.fail_next(Fault(status=400, body=pinned))
    backend = backend_for(fake, adapters={"pip-lora": "/adapters/pip"}, persona_of_model={"pip-lora": "pip"})
    refused = r"does not serve 'pip-lora', the model persona pip answers with .*bound in persona pip's card"
    with pytest.raises(ModelNotFound, match=rf"{refused}.*costar vllm-args"):
        await backend.complete(chat_request())
    await backend.aclose()
