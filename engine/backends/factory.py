"""Build the configured backend. Heavy imports happen only for the backend that is chosen.

torch and transformers are imported by ``engine.backends.embedded`` alone, so a bot pointed at a
remote server (``COSTAR_BACKEND_KIND=openai``) runs without them (the Dockerfile installs neither).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.backends.base import Backend
from engine.settings import Settings

if TYPE_CHECKING:
    from engine.observability.metrics import Metrics
    from engine.prompting.tokens import TokenCounter
    from personas.registry import PersonaRegistry

__all__ = ["make_backend"]


def make_backend(
    settings: Settings,
    personas: PersonaRegistry | None = None,
    metrics: Metrics | None = None,
    counter: TokenCounter | None = None,
) -> Backend:
    """``counter`` is the prompt builder's: the llama.cpp backend checks at load that it agrees with the GGUF."""
    kind = settings.backend.kind
    if kind == "embedded":
        return _transformers(settings, personas)
    if kind == "llamacpp":
        from engine.backends.cpu_routing import CpuBackends
        from engine.backends.llamacpp import LlamaCppBackend
        from engine.serving.model_store import gguf_model_path

        llamacpp = LlamaCppBackend(
            gguf_model_path(settings.backend.model_path),
            context_tokens=settings.backend.context_tokens,
            threads=settings.backend.threads,
            prefix_cache_bytes=settings.backend.prefix_cache_mb << 20,
            saved_states_bytes=settings.backend.saved_states_mb << 20,
            adapter_cache_dir=settings.core.cache_dir,
            counter=counter,
        )
        return CpuBackends(llamacpp, lambda: _transformers(settings), personas)
    if kind == "openai":
        from engine.backends.openai_backend import OpenAIBackend

        return OpenAIBackend.from_settings(settings, personas, metrics=metrics)
    if kind == "scripted":
        from engine.backends.scripted import ScriptedBackend

        return ScriptedBackend(echo=True)
    raise NotImplementedError(f"COSTAR_BACKEND_KIND={kind} is not available in this build")


def _transformers(settings: Settings, personas: PersonaRegistry | None = None) -> Backend:
    """The embedded backend; given ``personas``, it loads their adapters together with the model."""
    from engine.backends.embedded import EmbeddedBackend
    from engine.serving.adapter_paths import persona_adapters

    return EmbeddedBackend(
        settings.backend.model,
        cache_dir=settings.core.cache_dir,
        device=settings.backend.device,
        threads=settings.backend.threads,
        adapters=persona_adapters(personas.cards.values(), personas.sources) if personas else None,
    )
