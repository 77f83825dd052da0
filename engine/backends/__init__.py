"""LLM backends. Every backend implements :class:`engine.backends.base.Backend` and nothing more."""

from __future__ import annotations

from engine.backends.base import Backend, ChatMessage, GenerationRequest, TextStream

__all__ = ["Backend", "ChatMessage", "GenerationRequest", "TextStream"]
