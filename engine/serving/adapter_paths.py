"""Where a persona's LoRA adapter folder is: the manager, the backends and ``vllm-args`` agree here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from personas.card import PersonaCard

__all__ = ["adapter_folder", "persona_adapters"]


def adapter_folder(card: PersonaCard, source: Path | None) -> str | None:
    """The card's adapter folder; a relative path is relative to the card file (``source``)."""
    adapter = card.model.adapter
    if adapter is None or adapter.path is None:
        return None
    path = Path(adapter.path).expanduser()
    if not path.is_absolute() and source is not None:
        path = source.parent / path
    return str(path)


def persona_adapters(cards: Iterable[PersonaCard], sources: Mapping[str, Path]) -> dict[str, str]:
    """Adapter name -> folder for every card that binds an adapter with a path."""
    adapters = {}
    for card in cards:
        folder = adapter_folder(card, sources.get(card.persona_id))
        if folder is not None and card.model.adapter is not None:
            adapters[card.model.adapter.name] = folder
    return adapters
