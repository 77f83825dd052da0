"""The OpenAI-compatible backend: vLLM in production, ``transformers serve`` in tests.

A request's ``model`` is the persona's LoRA adapter name (vLLM picks the adapter by it) or the
base model. Errors are mapped in one place (:mod:`engine.backends.vllm_errors`) and recovered
from before the first chunk arrives:

    connection refused / timeout / 502-504  retry with exponential backoff, then BackendUnavailable
    400 context too long                    request.shorten() and retry once, else ContextTooLong
    404 unknown adapter                     POST /v1/load_lora_adapter and retry once (when runtime
                                            loading is on), else ModelNotFound
    error event inside the stream           BackendError (text already went out: no retry)

The openai client's own retries are off (``max_retries=0``) so every retry is decided here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import httpx2
import openai

from engine.backends.base import Backend, GenerationRequest, TextStream
from engine.backends.vllm_errors import (
    AdaptersMissing,
    ErrorKind,
    ServerError,
    error_from_openai,
    parse_error_body,
    to_backend_error,
)
from engine.errors import BackendError, BackendUnavailable, ModelNotFound
from engine.events import Usage
from engine.observability.metrics import Metrics
from engine.serving.adapter_paths import adapter_folder
from engine.serving.model_names import served_model_name
from engine.settings import Settings
from personas.registry import PersonaRegistry

__all__ = ["OpenAIBackend", "RetryPolicy"]

log = logging.getLogger(__name__)

_FIX_MISSING_ADAPTERS = (
    "Restart vLLM with the arguments printed by `costar vllm-args` (they name every persona's adapter), "
    "or enable runtime loading: VLLM_ALLOW_RUNTIME_LORA_UPDATING=True on the server and "
    "COSTAR_BACKEND_RUNTIME_LORA_LOADING=true here."
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 4  # tries in all while the server is unavailable
    backoff_s: float = 0.5  # first wait; doubles each time
    max_backoff_s: float = 8.0

    def delay(self, failures: int) -> float:
        return min(self.backoff_s * 2.0 ** (failures - 1), self.max_backoff_s)


@dataclass(slots=True)
class _Recovery:
    """What has already been tried for one reply, so each remedy is used at most as allowed."""

    unavailable: int = 0
    shortened: bool = False
    loaded_adapter: bool = False


def _persona_models(personas: PersonaRegistry | None, base_model: str) -> tuple[dict[str, str | None], dict[str, str]]:
    """(adapter name -> folder, model name -> a persona id using it), as the manager will request them."""
    adapters: dict[str, str | None] = {}
    expected: dict[str, str] = {}
    for card in personas.cards.values() if personas else ():
        binding = card.model.adapter
        if binding is not None:
            adapters[binding.name] = adapter_folder(card, personas.sources.get(card.persona_id))  # type: ignore[union-attr]
        expected[served_model_name(card, base_model)] = card.persona_id
    return adapters, expected


class OpenAIBackend(Backend):
    name = "openai"

    def __init__(
        self,
        base_url: str,
        *,
        default_model: str,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        retry: RetryPolicy = RetryPolicy(),
        runtime_lora_loading: bool = False,
        adapters: Mapping[str, str | None] | None = None,
        expected_models: Mapping[str, str] | None = None,
        server_adapter_dir: str | None = None,
        http_client: httpx2.AsyncClient | None = None,
        metrics: Metrics | None = None,
        persona_of_model: Mapping[str, str] | None = None,
    ) -> None:
        """``adapters`` maps adapter name -> folder (for runtime loading); ``expected_models`` maps each
        model name the personas use -> a persona id, for the startup check."""
        self.default_model = default_model
        self.timeout_s = timeout_s
        self.retry = retry
        self.runtime_lora_loading = runtime_lora_loading
        self.adapters = dict(adapters or {})
        self.expected_models = dict(expected_models or {})
        # For errors: which persona asked for a model the server refused (checked at start or not).
        self.persona_of_model = dict(persona_of_model or expected_models or {})
        self.server_adapter_dir = server_adapter_dir
        self.metrics = metrics
        self._load_locks: dict[str, asyncio.Lock] = {}
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            # vLLM without --api-key accepts any key; the client insists on having one.
            api_key=api_key or "EMPTY",
            timeout=httpx2.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            max_retries=0,
            http_client=http_client,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, personas: PersonaRegistry | None = None, *, metrics: Metrics | None = None
    ) -> OpenAIBackend:
        """The backend for COSTAR_BACKEND_*; ``personas`` feed the startup check and runtime loading."""
        backend_settings = settings.backend
        assert backend_settings.base_url is not None  # BackendSettings refuses kind=openai without one
        adapters, expected = _persona_models(personas, backend_settings.model)
        return cls(
            backend_settings.base_url,
            default_model=backend_settings.model,
            api_key=backend_settings.api_key.get_secret_value() if backend_settings.api_key else None,
            timeout_s=backend_settings.timeout_s,
            retry=RetryPolicy(attempts=backend_settings.retry_attempts, backoff_s=backend_settings.retry_backoff_s),
            runtime_lora_loading=backend_settings.runtime_lora_loading,
            adapters=adapters,
            expected_models=expected if backend_settings.check_models else {},
            persona_of_model=expected,
            server_adapter_dir=backend_settings.server_adapter_dir,
            metrics=metrics,
        )

    # -- the Backend contract -------------------------------------------------------------

    def stream(self, request: GenerationRequest) -> TextStream:
        return self.generate(request, streaming=True)

    async def complete(self, request: GenerationRequest) -> str:
        return await self.generate(request, streaming=False).text()

    def generate(self, request: GenerationRequest, *, streaming: bool) -> TextStream:
        """A TextStream over one reply; ``streaming=False`` asks for the whole reply in one response."""
        result = TextStream()
        return result.attach(self._chunks(request, result, streaming))

    async def start(self) -> None:
        """Check that the server serves every persona's model; load missing adapters if allowed."""
        if not self.expected_models:
            return
        served = await self.served_models()
        missing = {name: persona for name, persona in self.expected_models.items() if name not in served}
        if missing and self.runtime_lora_loading:
            for name in list(missing):
                path = self._adapter_path(name, None)
                if path is not None:
                    await self.load_adapter(name, path)
                    del missing[name]
        if missing:
            raise AdaptersMissing(missing, served, _FIX_MISSING_ADAPTERS)

    async def aclose(self) -> None:
        await self._client.close()

    # -- server surface -------------------------------------------------------------------

    async def served_models(self) -> list[str]:
        """Ids from ``GET /v1/models`` (base model and adapters), retried while the server starts."""
        recovery = _Recovery()
        while True:
            try:
                return [card.id async for card in self._client.models.list()]
            except openai.OpenAIError as exc:
                kind, error = error_from_openai(exc)
                if not await self._wait_if_unavailable(kind, recovery):
                    raise self._error(kind, error, None) from exc

    async def load_adapter(self, name: str, path: str) -> None:
        """``POST /v1/load_lora_adapter``; needs VLLM_ALLOW_RUNTIME_LORA_UPDATING=True on the server."""
        lock = self._load_locks.setdefault(name, asyncio.Lock())
        async with lock:  # two channels missing the same adapter load it once
            try:
                await self._client.post("load_lora_adapter", body={"lora_name": name, "lora_path": path}, cast_to=str)
            except openai.APIStatusError as exc:
                error = parse_error_body(exc.response.text, status=exc.status_code)
                if exc.status_code == 400 and "already" in error.message.lower():
                    return  # loaded meanwhile (another channel, or another bot replica)
                raise ModelNotFound(
                    name, f"could not load adapter {name!r} from {path!r}: HTTP {exc.status_code} {error.message}"
                ) from exc
            except openai.OpenAIError as exc:
                kind, error = error_from_openai(exc)
                raise self._error(kind, error, name) from exc
        log.info("loaded LoRA adapter %s from %s on the model server", name, path)

    # -- one reply ------------------------------------------------------------------------

    async def _chunks(self, request: GenerationRequest, result: TextStream, streaming: bool) -> AsyncIterator[str]:
        deadline = time.monotonic() + self.timeout_s
        response = await self._open(request, streaming)
        model = request.model or self.default_model
        if not streaming:
            text = self._read_completion(response, result)
            if text:
                yield text
            return
        try:
            async for chunk in response:
                text = self._read_chunk(chunk, result)
                if text:
                    yield text
                if time.monotonic() > deadline:
                    raise BackendUnavailable(f"no complete reply from the model server within {self.timeout_s:g}s")
        except openai.OpenAIError as exc:
            kind, error = error_from_openai(exc)
            raise self._error(kind, error, model) from exc
        finally:
            await response.close()

    async def _open(self, request: GenerationRequest, streaming: bool) -> Any:
        """Send the request, recovering from errors that arrive before any text did."""
        recovery = _Recovery()
        current = request
        while True:
            try:
                return await self._client.chat.completions.create(**self._payload(current, streaming))
            except openai.OpenAIError as exc:
                kind, error = error_from_openai(exc)
                retry_with = await self._recover(kind, current, recovery)
                if retry_with is None:
                    raise self._error(kind, error, current.model or self.default_model) from exc
                if self.metrics is not None:
                    self.metrics.backend_retry(kind.value)
                log.warning("model server: %s (%s); retrying", kind.value, error.message)
                current = retry_with

    async def _recover(
        self, kind: ErrorKind, request: GenerationRequest, recovery: _Recovery
    ) -> GenerationRequest | None:
        """The request to retry with, or None when this error is final."""
        if await self._wait_if_unavailable(kind, recovery):
            return request
        if kind is ErrorKind.CONTEXT_TOO_LONG and not recovery.shortened and request.shorten is not None:
            recovery.shortened = True
            return request.shorten()
        if kind is ErrorKind.MODEL_NOT_FOUND and not recovery.loaded_adapter and self.runtime_lora_loading:
            name = request.model or self.default_model
            path = self._adapter_path(name, request.adapter_path)
            if path is None:
                return None
            recovery.loaded_adapter = True
            await self.load_adapter(name, path)
            return request
        return None

    async def _wait_if_unavailable(self, kind: ErrorKind, recovery: _Recovery) -> bool:
        if kind is not ErrorKind.UNAVAILABLE:
            return False
        recovery.unavailable += 1
        if recovery.unavailable >= self.retry.attempts:
            return False
        await asyncio.sleep(self.retry.delay(recovery.unavailable))
        return True

    def _error(self, kind: ErrorKind, error: ServerError, model: str | None) -> BackendError:
        base_url = str(self._client.base_url)
        persona = self.persona_of_model.get(model or "")
        return to_backend_error(kind, error, model, base_url=base_url, adapter=model in self.adapters, persona=persona)

    def _adapter_path(self, name: str, request_path: str | None) -> str | None:
        path = request_path or self.adapters.get(name)
        if path is None:
            return None
        # In docker the server mounts the adapters elsewhere: send the folder under its view of them.
        if self.server_adapter_dir:
            return str(PurePosixPath(self.server_adapter_dir) / PurePosixPath(path).name)
        return path

    def _payload(self, request: GenerationRequest, streaming: bool) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": request.model or self.default_model,
            "messages": [message.as_dict() for message in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stream": streaming,
        }
        if request.repetition_penalty != 1.0:
            # The one repetition knob every OpenAI-compatible server takes: transformers serve maps it
            # back to repetition_penalty = 1 + frequency_penalty (and refuses an unknown
            # "repetition_penalty" field with 422); vLLM applies it as OpenAI's additive penalty.
            payload["frequency_penalty"] = round(request.repetition_penalty - 1.0, 4)
        if streaming:
            payload["stream_options"] = {"include_usage": True}
        if request.stop:
            payload["stop"] = list(request.stop)
        if request.seed is not None:
            payload["seed"] = request.seed
        return payload

    # -- reading replies ------------------------------------------------------------------

    @staticmethod
    def _usage(raw: Any) -> Usage | None:
        if raw is None:
            return None
        return Usage(prompt_tokens=raw.prompt_tokens, completion_tokens=raw.completion_tokens)

    def _read_chunk(self, chunk: Any, result: TextStream) -> str:
        # An in-band error the client did not recognise: older vLLM's flat shape has no "error" key.
        if getattr(chunk, "object", None) == "error":
            error = parse_error_body(chunk.model_dump())
            raise BackendError(f"model server error inside the reply stream: {error.message}")
        if chunk.usage is not None:  # vLLM: its own usage-only chunk; transformers: on the last chunk
            result.usage = self._usage(chunk.usage)
        if not chunk.choices:
            return ""
        choice = chunk.choices[0]
        if choice.finish_reason:
            result.finish_reason = choice.finish_reason
        return (choice.delta.content if choice.delta is not None else None) or ""

    def _read_completion(self, completion: Any, result: TextStream) -> str:
        result.usage = self._usage(completion.usage)
        if not completion.choices:
            raise BackendError("the model server answered without any choices")
        choice = completion.choices[0]
        result.finish_reason = choice.finish_reason
        return choice.message.content or ""
