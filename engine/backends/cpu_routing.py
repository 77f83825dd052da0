"""llama.cpp for every persona it can serve, transformers for the rest (prompt-tuning adapters).

A prompt-tuning adapter is a set of learned input embeddings, which llama.cpp has no way to load;
the transformers backend serves it. That backend (torch, the converted model) is only loaded when
such a persona first speaks. At start the log says which backend each persona runs on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from engine.backends.base import Backend, GenerationRequest, TextStream
from engine.backends.llama_adapters import peft_type_of
from engine.backends.llamacpp import LlamaCppBackend
from engine.serving.adapter_paths import adapter_folder
from personas.registry import PersonaRegistry

__all__ = ["CpuBackends"]

log = logging.getLogger(__name__)


def _needs_transformers(adapter_path: str | None) -> bool:
    return adapter_path is not None and peft_type_of(adapter_path) not in (None, "LORA")


class CpuBackends(Backend):
    name = "llamacpp"

    def __init__(
        self,
        llamacpp: LlamaCppBackend,
        make_transformers: Callable[[], Backend],
        personas: PersonaRegistry | None = None,
    ) -> None:
        self.llamacpp = llamacpp
        self._make_transformers = make_transformers
        self._transformers: Backend | None = None
        self.personas = personas

    def backend_for(self, adapter_path: str | None) -> Backend:
        if not _needs_transformers(adapter_path):
            return self.llamacpp
        if self._transformers is None:
            self._transformers = self._make_transformers()
        return self._transformers

    def stream(self, request: GenerationRequest) -> TextStream:
        return self.backend_for(request.adapter_path).stream(request)

    def reads_ahead(self, conversation: str | None) -> bool:
        return self.llamacpp.reads_ahead(conversation)

    async def read_ahead(self, request: GenerationRequest) -> None:
        await self.backend_for(request.adapter_path).read_ahead(request)

    @property
    def keeps_prompt_state(self) -> bool:  # type: ignore[override]
        return self.llamacpp.keeps_prompt_state

    async def warm(self, request: GenerationRequest) -> None:
        await self.backend_for(request.adapter_path).warm(request)

    async def start(self) -> None:
        await self.llamacpp.start()
        for persona_id, card in sorted((self.personas.cards if self.personas else {}).items()):
            path = adapter_folder(card, self.personas.sources.get(persona_id) if self.personas else None)
            if _needs_transformers(path):
                log.info("Persona %s runs on transformers (%s adapter %s)", persona_id, peft_type_of(path or ""), path)
            else:
                adapter = f" with LoRA adapter {Path(path).name}" if path else ""
                log.info("Persona %s runs on llama.cpp (%s%s)", persona_id, self.llamacpp.model_path.name, adapter)

    async def aclose(self) -> None:
        await self.llamacpp.aclose()
        if self._transformers is not None:
            await self._transformers.aclose()
