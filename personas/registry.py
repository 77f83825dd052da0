"""All installed personas, by id and by name. A bad card is reported and skipped; the rest load."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from personas.card import AdapterBinding, PersonaCard, slugify
from personas.errors import PersonaError
from personas.loader import CARD_SUFFIXES, SIDECAR_SUFFIX, load_card

__all__ = ["BUILTIN_CARDS_DIR", "PERSONA_ADAPTER_DIR", "PERSONA_ADAPTER_NAME", "PersonaRegistry"]

log = logging.getLogger(__name__)

BUILTIN_CARDS_DIR = Path(__file__).parent / "cards"
# The persona-following LoRA (docs/finetuning.md): any card that binds no adapter of its own speaks through it.
PERSONA_ADAPTER_DIR = Path(__file__).parent / "adapters" / "costar-persona"
PERSONA_ADAPTER_NAME = "costar-persona"


def is_sidecar(path: Path) -> bool:
    return path.name.lower().endswith(SIDECAR_SUFFIX)


@dataclass
class PersonaRegistry:
    cards: dict[str, PersonaCard] = field(default_factory=dict)
    sources: dict[str, Path] = field(default_factory=dict)
    errors: list[PersonaError] = field(default_factory=list)

    @classmethod
    def from_dirs(cls, folders: Iterable[Path | None]) -> PersonaRegistry:
        registry = cls()
        for folder in folders:
            if folder is not None:
                registry.load_dir(Path(folder))
        return registry

    def load_dir(self, folder: Path) -> None:
        if not folder.is_dir():
            self.errors.append(PersonaError(folder, "persona folder does not exist"))
            return
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in CARD_SUFFIXES and not path.name.startswith(".") and not is_sidecar(path):
                self.load_file(path)

    def load_file(self, path: Path) -> PersonaCard | None:
        try:
            card = load_card(path)
        except PersonaError as exc:
            if "world-info" in exc.problem:
                return None  # lorebooks live beside cards; cards reference them by file name
            self.errors.append(exc)  # reported once, by whoever loads the registry (bot.app)
            return None
        self.add(card, path)
        return card

    def add(self, card: PersonaCard, source: Path | None = None) -> None:
        earlier = self.sources.get(card.persona_id)
        if earlier is not None and source is not None and earlier.parent == source.parent:
            card = self._renamed(card, source)  # two cards in one folder: both stay switchable
        elif card.persona_id in self.cards and source is not None:
            log.warning(
                "Persona %r from %s replaces the one from %s",
                card.persona_id,
                source,
                self.sources.get(card.persona_id),
            )
        self.cards[card.persona_id] = card
        if source is not None:
            self.sources[card.persona_id] = source

    def _renamed(self, card: PersonaCard, source: Path) -> PersonaCard:
        number = 2
        while f"{card.persona_id}-{number}" in self.cards:
            number += 1
        new_id = f"{card.persona_id}-{number}"
        log.warning("Persona id %r is taken in %s; %s is %r", card.persona_id, source.parent, source.name, new_id)
        return card.model_copy(update={"id": new_id})

    def drop_adapters(self) -> None:
        """Unbind every card's LoRA adapter: the personas then speak through the bare base model."""
        for persona_id, card in self.cards.items():
            if card.model.adapter is not None:
                self.cards[persona_id] = card.model_copy(
                    update={"model": card.model.model_copy(update={"adapter": None})}
                )

    def bind_shared_adapter(
        self, binding: AdapterBinding, fits: Callable[[PersonaCard], bool] = lambda card: True
    ) -> list[str]:
        """Bind ``binding`` to every card that binds no adapter of its own and ``fits``; their ids.

        A card that says ``adapter: null`` outright keeps the bare base model: only a card that is
        silent about adapters (most cards, every SillyTavern card) gets the shared one.
        """
        bound = []
        for persona_id, card in self.cards.items():
            # Set at all (its own adapter, or null) means the card chose; pydantic counts a copy's updates as set.
            if "adapter" in card.model.model_fields_set or not fits(card):
                continue
            model = card.model.model_copy(update={"adapter": binding})
            self.cards[persona_id] = card.model_copy(update={"model": model})
            bound.append(persona_id)
        return bound

    def get(self, name: str) -> PersonaCard | None:
        """Look up by id, by name or by nickname, ignoring case and punctuation."""
        wanted = slugify(name)
        if wanted in self.cards:
            return self.cards[wanted]
        for card in self.cards.values():
            if wanted in (slugify(card.name), slugify(card.nickname or "")):
                return card
        return None

    def names(self) -> list[str]:
        return sorted(self.cards)

    def __len__(self) -> int:
        return len(self.cards)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None
