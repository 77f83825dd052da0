"""Build the configured backend. Heavy imports happen only for the backend that is chosen."""

from __future__ import annotations

from engine.backends.base import Backend
from engine.settings import Settings

__all__ = ["make_backend"]


def make_backend(settings: Settings) -> Backend:
    kind = settings.backend.kind
    if kind == "embedded":
        from engine.backends.embedded import EmbeddedBackend

        return EmbeddedBackend(
            settings.backend.model,
            cache_dir=settings.core.cache_dir,
            device=settings.backend.device,
            threads=settings.backend.threads,
        )
    if kind == "scripted":
        from engine.backends.scripted import ScriptedBackend

        return ScriptedBackend(echo=True)
    raise NotImplementedError(f"COSTAR_BACKEND_KIND={kind} is not available in this build")
