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
    from personas.registry import PersonaRegistry

__all__ = ["make_backend"]


def make_backend(
    settings: Settings, personas: PersonaRegistry | None = None, metrics: Metrics | None = None
) -> Backend:
    kind = settings.backend.kind
    if kind == "embedded":
        from engine.backends.embedded import EmbeddedBackend

        return EmbeddedBackend(
            settings.backend.model,
            cache_dir=settings.core.cache_dir,
            device=settings.backend.device,
            threads=settings.backend.threads,
        )
    if kind == "openai":
        from engine.backends.openai_backend import OpenAIBackend

        return OpenAIBackend.from_settings(settings, personas, metrics=metrics)
    if kind == "scripted":
        from engine.backends.scripted import ScriptedBackend

        return ScriptedBackend(echo=True)
    raise NotImplementedError(f"COSTAR_BACKEND_KIND={kind} is not available in this build")
