"""The dashboard's cards page: each installed card, its `persona check` result, whether its
adapter is in use, and an editor for the ``reactions:`` and ``commands:`` blocks.

An edit is saved only when the whole card still validates (the error names the field), and only
those blocks change in the file: every other line, comments included, stays as it was. Only
cards in COSTAR_PERSONAS_DIR are editable; the built-in ones ship with costar.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.adapter_check import check_adapter
from engine.manager import ConversationManager
from personas.card_text import blocks_text, save_blocks
from personas.errors import PersonaError
from personas.loader import load_card

__all__ = ["EDITABLE_BLOCKS", "Cards"]

EDITABLE_BLOCKS = ("reactions", "commands")
_MAX_EDIT_CHARS = 100_000


def _persona_check(source: Path, default_base: str) -> dict[str, Any]:
    """What `costar persona check SOURCE` says, as data (runs in a worker thread)."""
    try:
        card = load_card(source)
    except PersonaError as refused:
        return {"ok": False, "lines": [str(refused)]}
    adapter = check_adapter(card, source, default_base)
    if adapter.problems:
        return {"ok": False, "lines": [f"field 'model.adapter': {problem}" for problem in adapter.problems]}
    bound = f", adapter {card.model.adapter.name}" if card.model.adapter else ""
    lines = [
        f"ok: {card.name} ({card.persona_id}), {card.source_format}, {len(card.lorebook.entries)} lore entries{bound}"
    ]
    return {"ok": True, "lines": lines + [f"note: {note}" for note in adapter.notes]}


class Cards:
    def __init__(self, manager: ConversationManager) -> None:
        self.manager = manager

    def _editable(self, source: Path | None) -> bool:
        folder = self.manager.settings.core.personas_dir
        return (
            source is not None
            and folder is not None
            and source.suffix.lower() in (".yaml", ".yml")
            and source.resolve().parent == Path(folder).resolve()
        )

    def _source(self, persona_id: Any) -> Path:
        source = self.manager.personas.sources.get(persona_id) if isinstance(persona_id, str) else None
        if source is None:
            raise web.HTTPNotFound(text="no such persona\n")
        return source

    async def cards(self, query: Any) -> dict[str, Any]:
        base = self.manager.settings.backend.model
        listed = []
        for persona_id, card in sorted(self.manager.personas.cards.items()):
            source = self.manager.personas.sources.get(persona_id)
            check = await asyncio.to_thread(_persona_check, source, base) if source else {"ok": True, "lines": []}
            adapter = card.model.adapter  # in the running bot: None when none is bound or adapters are off
            listed.append(
                {
                    "id": persona_id,
                    "name": card.display_name,
                    "file": source.name if source else None,
                    "editable": self._editable(source),
                    "adapter": adapter.name if adapter else None,
                    "check": check,
                }
            )
        broken = [str(error) for error in self.manager.personas.errors]
        return {"cards": listed, "broken": broken}

    async def card(self, query: Any) -> dict[str, Any]:
        source = self._source(query.get("id"))
        text = await asyncio.to_thread(source.read_text, encoding="utf-8") if self._editable(source) else ""
        blocks = blocks_text(text, EDITABLE_BLOCKS) if text else ""
        return {"id": query.get("id"), "editable": self._editable(source), "text": blocks}

    async def save(self, request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
        persona_id, text = body.get("id"), body.get("text")
        source = self._source(persona_id)
        if not isinstance(text, str) or len(text) > _MAX_EDIT_CHARS:
            raise web.HTTPBadRequest(
                text=f"text: the YAML of {' and '.join(EDITABLE_BLOCKS)}, at most 100,000 characters\n"
            )
        if not self._editable(source):
            raise web.HTTPForbidden(text="a built-in card: copy it into COSTAR_PERSONAS_DIR to edit it\n")
        try:
            card = await asyncio.to_thread(save_blocks, source, EDITABLE_BLOCKS, text)
        except PersonaError as refused:
            raise web.HTTPBadRequest(text=f"not saved: {refused}\n") from None
        except OSError as failed:
            raise web.HTTPInternalServerError(
                text=f"not saved: cannot write {source.name}: {failed.strerror}\n"
            ) from None
        assert isinstance(persona_id, str)
        self.manager.replace_card(persona_id, card)
        return {"type": "card_saved", "id": persona_id, "commands": [command.name for command in card.commands]}
