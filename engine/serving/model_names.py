"""The served-model-name rule: which model name a generation request for a persona carries.

A persona with a LoRA adapter is served under the adapter's name (vLLM serves each LoRA as a
model of that name); otherwise the persona's own base model, or the configured backend model.
The manager puts this name on every request, and the OpenAI backend checks at start-up that the
server offers every name the installed personas will ask for.
"""

from __future__ import annotations

from personas.card import PersonaCard

__all__ = ["served_model_name"]


def served_model_name(persona: PersonaCard, default_model: str) -> str:
    """The model name requests for ``persona`` use; ``default_model`` is COSTAR_BACKEND_MODEL."""
    adapter = persona.model.adapter
    if adapter is not None:
        return adapter.name
    return persona.model.base or default_model
