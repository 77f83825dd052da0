"""The persona card as training sees it: loaded and rendered exactly as serving does.

The system turn of every training conversation is ``personas.render.render_system_prompt(card)``
— the same function the prompt builder calls — so an adapter is trained on the prompt it will be
served with (a different prompt at serving time measurably costs the adapter its gains).
"""

from __future__ import annotations

from pathlib import Path

from personas.card import PersonaCard
from personas.loader import load_card as load_persona_card
from personas.render import render_system_prompt

__all__ = ["DEFAULT_CARD", "load_card", "persona_text", "system_prompt"]

# The default persona shipped with costar (personas/cards/pip.yaml).
DEFAULT_CARD = Path(__file__).resolve().parent.parent / "personas" / "cards" / "pip.yaml"


def load_card(path: Path | str) -> PersonaCard:
    """Load a card (YAML, JSON or PNG) with the bot's own loader; errors name file and field."""
    return load_persona_card(Path(path))


def system_prompt(card: PersonaCard) -> str:
    return render_system_prompt(card)


def persona_text(card: PersonaCard) -> str:
    """A short description used to initialise prompt-tuning's virtual tokens."""
    parts = [f"You are {card.display_name}.", card.description, card.personality, *card.facts]
    return " ".join(part.strip() for part in parts if part and part.strip())
