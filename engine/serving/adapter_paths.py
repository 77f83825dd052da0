"""Where a persona's LoRA adapter folder is: the manager, the backends and ``vllm-args`` agree here."""

from __future__ import annotations

from pathlib import Path

from personas.card import PersonaCard

__all__ = ["adapter_folder"]


def adapter_folder(card: PersonaCard, source: Path | None) -> str | None:
    """The card's adapter folder; a relative path is relative to the card file (``source``)."""
    adapter = card.model.adapter
    if adapter is None or adapter.path is None:
        return None
    path = Path(adapter.path).expanduser()
    if not path.is_absolute() and source is not None:
        path = source.parent / path
    return str(path)
