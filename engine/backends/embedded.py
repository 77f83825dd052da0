"""The embedded backend: a transformers model in this process, generating in a worker thread.

Only this module imports torch and transformers, so a bot that talks to a remote vLLM server
never needs them. Generation runs on one dedicated thread (the model is not re-entrant and the
CPU is better used by torch's own intra-op threads than by parallel requests); tokens flow back
to the event loop as they are produced (``engine.backends.thread_stream``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing, nullcontext
from functools import partial
from pathlib import Path
from typing import Any

from engine.backends.base import Backend, GenerationRequest, TextStream
from engine.backends.thread_stream import Emit, chunks_from_thread
from engine.errors import BackendError, SettingsError
from engine.events import Usage
from engine.serving.model_store import resolve_model_path

__all__ = ["EmbeddedBackend", "default_cpu_threads"]

log = logging.getLogger(__name__)


class _DeltaStreamer:
    """transformers streamer protocol (put/end) that emits decoded text deltas as they grow."""

    def __init__(self, tokenizer: Any, emit: Emit) -> None:
        self.tokenizer = tokenizer
        self.emit = emit
        self.generated: list[int] = []
        self.sent_chars = 0
        self.skipped_prompt = False

    def put(self, value: Any) -> None:
        if not self.skipped_prompt:  # generate() first hands over the prompt itself
            self.skipped_prompt = True
            return
        self.generated.extend(value.reshape(-1).tolist())
        text = self.tokenizer.decode(self.generated, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return  # half of a multi-byte character: wait for the next token
        delta, self.sent_chars = text[self.sent_chars :], len(text)
        if delta:
            self.emit(delta)

    def end(self) -> None:
        """The bridge ends the stream when generation returns."""


def default_cpu_threads(cores: int | None = None) -> int:
    """Half the CPU cores this process may use, at least one.

    A streamer's PC also runs OBS and a game. torch's OpenMP threads spin-wait for a core another
    process holds, so all cores on a busy machine is several times slower than fewer (measured on a
    busy 2-core machine: 33-60 s a reply with torch's default of 2 threads, 5-13 s with 1).
    """
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // 2)


class EmbeddedBackend(Backend):
    name = "embedded"

    def __init__(
        self,
        model: str,
        *,
        cache_dir: Path,
        device: str = "cpu",
        threads: int | None = None,
        adapters: Mapping[str, str] | None = None,
    ) -> None:
        """``adapters`` (name -> folder) are loaded with the model at start, so a persona's first
        reply does not wait for its adapter and a broken adapter stops the bot at start-up."""
        self.model_setting = model
        self.preload = dict(adapters or {})
        self.cache_dir = cache_dir
        self.device = device
        self.threads = threads or default_cpu_threads()
        self.model: Any = None
        self.tokenizer: Any = None
        self.model_path: str | None = None
        self._adapters: dict[str, str] = {}  # adapter name -> path already loaded
        # One worker thread: loads and generations queue up on it, so no asyncio lock (and no
        # event-loop affinity) is needed.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="costar-generate")

    async def start(self) -> None:
        if self.model is None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self.load)

    def load(self) -> None:
        """Load the model now (blocking); safe to call twice."""
        if self.model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # a "Loading weights" bar on every start is noise
        torch.set_num_threads(self.threads)
        self.model_path = resolve_model_path(self.model_setting, self.cache_dir)
        device = ("cuda" if torch.cuda.is_available() else "cpu") if self.device == "auto" else self.device
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
            model: Any = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise SettingsError(f"cannot load model {self.model_setting!r} (COSTAR_BACKEND_MODEL): {exc}") from exc
        self.model = model.to(device).eval()
        log.info("Embedded model %s loaded on %s (%d CPU threads)", self.model_path, device, self.threads)
        for name, path in self.preload.items():
            self._load_adapter(name, path)

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def stream(self, request: GenerationRequest) -> TextStream:
        result = TextStream()
        return result.attach(self._chunks(request, result))

    async def _chunks(self, request: GenerationRequest, result: TextStream) -> AsyncIterator[str]:
        await self.start()

        def finished(counts: tuple[int, int]) -> None:
            result.usage = Usage(prompt_tokens=counts[0], completion_tokens=counts[1])
            result.finish_reason = "stop"

        generation = chunks_from_thread(
            self._executor, partial(self._generate, request), done=finished, failure="embedded generation failed"
        )
        async with aclosing(generation) as chunks:
            async for chunk in chunks:
                yield chunk

    def _generate(self, request: GenerationRequest, emit: Emit, cancelled: threading.Event) -> tuple[int, int]:
        """Runs on the generation thread; returns the prompt and completion token counts."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        class _Cancelled(StoppingCriteria):  # type: ignore[misc]  # transformers is not analysed (pyproject)
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), cancelled.is_set(), dtype=torch.bool, device=input_ids.device)

        streamer = _DeltaStreamer(self.tokenizer, emit)
        messages = [message.as_dict() for message in request.messages]
        encoded = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        input_ids = encoded["input_ids"].to(self.model.device)
        sampling = request.temperature > 0
        options: dict[str, Any] = {"do_sample": sampling, "max_new_tokens": request.max_tokens}
        if sampling:
            options |= {"temperature": request.temperature, "top_p": request.top_p}
        if request.seed is not None:
            torch.manual_seed(request.seed)
        with torch.inference_mode(), self._adapter_context(request):
            self.model.generate(
                input_ids=input_ids,
                attention_mask=encoded["attention_mask"].to(self.model.device),
                streamer=streamer,
                stopping_criteria=StoppingCriteriaList([_Cancelled()]),
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                repetition_penalty=request.repetition_penalty,
                **options,
            )
        return int(input_ids.shape[1]), len(streamer.generated)

    def _adapter_context(self, request: GenerationRequest) -> Any:
        """Activate the request's LoRA adapter, or run the bare base model when it has none."""
        if request.adapter_path is None:
            disable = getattr(self.model, "disable_adapter", None)
            return disable() if self._adapters and disable is not None else nullcontext()
        name = request.model or Path(request.adapter_path).name
        if name not in self._adapters:
            self._load_adapter(name, request.adapter_path)
        self.model.set_adapter(name)
        return nullcontext()

    def _load_adapter(self, name: str, path: str) -> None:
        config_path = Path(path) / "adapter_config.json"
        try:
            peft_type = json.loads(config_path.read_text()).get("peft_type")
        except (OSError, json.JSONDecodeError) as exc:
            raise BackendError(f"cannot read adapter {name!r} at {path}: {exc}") from exc
        if peft_type != "LORA":
            raise BackendError(f"adapter {name!r} is {peft_type}; the embedded backend serves LoRA adapters only")
        from peft import PeftModel

        try:
            if self._adapters:
                self.model.load_adapter(path, adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name)
        except (OSError, ValueError, RuntimeError) as exc:  # missing weights, shapes of another base model
            raise BackendError(
                f"cannot load adapter {name!r} from {path} onto {self.model_setting}: {exc}. "
                "Train it for this base model, unbind it from the card, or set COSTAR_BACKEND_ADAPTERS=false"
            ) from exc
        self.model.eval()
        self._adapters[name] = path
        log.info("Loaded LoRA adapter %s from %s", name, path)
