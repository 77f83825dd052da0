"""The persona card as training sees it: loaded and rendered exactly as serving does.

The system turn of every training conversation is ``personas.render.render_system_prompt(card)``
— the same function the prompt builder calls — so an adapter is trained on the prompt it will be
served with (a different prompt at serving time measurably costs the adapter its gains).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from finetune.data import Conversation, with_system_prompt
from finetune.errors import DataError
from personas.card import PersonaCard
from personas.errors import PersonaError
from personas.loader import load_card as load_persona_card
from personas.render import render_system_prompt

__all__ = ["DEFAULT_CARD", "load_card", "persona_text", "system_prompt", "with_card_prompts"]

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


def with_card_prompts(
    conversations: Sequence[Conversation], data_file: Path | str, default_card: Path | str
) -> list[Conversation]:
    """Give each conversation without a system turn the rendered prompt of its card.

    A conversation naming its own ``card`` (relative to ``data_file``, as a many-character set
    does) gets that card; the others get ``default_card``. Each card is loaded and rendered once,
    and ``default_card`` only when some conversation needs it.
    """
    prompts: dict[Path, str] = {}

    def prompt_of(card_path: Path) -> str:
        if card_path not in prompts:
            try:
                prompts[card_path] = system_prompt(load_card(card_path))
            except PersonaError as exc:
                raise DataError(data_file, f"card {card_path}: {exc}") from exc
        return prompts[card_path]

    data_dir = Path(data_file).parent
    rendered = []
    for conversation in conversations:
        if conversation.system_prompt is not None:
            rendered.append(conversation)
            continue
        card_path = data_dir / conversation.card if conversation.card else Path(default_card)
        rendered.append(with_system_prompt(conversation, prompt_of(card_path.resolve())))
    return rendered
