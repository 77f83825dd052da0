"""The dashboard's persona and memory pages: switch a channel's persona, search viewers, read and
delete their notes, forget a viewer (with a confirm step), read a channel's rolling summary.

Reads are open to any login; changes are moderator actions (the server's guard checks the role
and the CSRF token before any of these run).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from engine.errors import PersonaNotFound
from engine.manager import ConversationManager
from memory import Note, StoredMessage, UserRecord

__all__ = ["Library"]

_MAX_QUERY_CHARS = 100


def _text(values: Any, name: str, *, most: int = 200) -> str:
    value = values.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= most:
        raise web.HTTPBadRequest(text=f"{name}: a non-empty text of at most {most} characters is needed\n")
    return value


def _channel(values: Any) -> tuple[str, str]:
    platform, colon, channel_id = _text(values, "channel").partition(":")
    if not colon or not channel_id:
        raise web.HTTPBadRequest(text="channel: platform:channel_id, as the live view shows it\n")
    return platform, channel_id


def _viewer(record: UserRecord) -> dict[str, Any]:
    return {
        "platform": record.platform,
        "id": record.user_id,
        "name": record.display_name,
        "lines": record.message_count,
        "last_seen": record.last_seen.isoformat(),
    }


def _note(note: Note) -> dict[str, Any]:
    # kind and place say where it came from: the viewer's own words, a reflection, a moderator.
    return {"id": note.id, "text": note.text, "kind": note.kind, "place": note.place, "at": note.created_at.isoformat()}


def _line(line: StoredMessage) -> dict[str, Any]:
    return {"text": line.text, "channel": f"{line.platform}:{line.channel_id}", "at": line.created_at.isoformat()}


class Library:
    def __init__(self, manager: ConversationManager) -> None:
        self.manager = manager

    # -- reads (GET /dashboard/api/NAME) ------------------------------------------------------

    async def personas(self, query: Any) -> dict[str, Any]:
        platform, channel_id = _channel(query)
        current = await self.manager.persona_for(platform, channel_id)
        cards = self.manager.personas.cards
        return {
            "current": current.persona_id,
            "personas": [{"id": pid, "name": card.display_name} for pid, card in sorted(cards.items())],
        }

    async def viewers(self, query: Any) -> dict[str, Any]:
        found = await self.manager.find_viewers(_text(query, "q", most=_MAX_QUERY_CHARS))
        return {"viewers": [_viewer(record) for record in found]}

    async def viewer(self, query: Any) -> dict[str, Any]:
        platform, user_id = _text(query, "platform"), _text(query, "id")
        about = await self.manager.about(platform, user_id)
        if about.record is None:
            raise web.HTTPNotFound(text="no such viewer (forgotten, or never seen)\n")
        lines = await self.manager.viewer_lines(platform, user_id)
        return {
            "viewer": _viewer(about.record),
            "notes": [_note(note) for note in about.notes],
            "lines": [_line(line) for line in lines],
        }

    async def summary(self, query: Any) -> dict[str, Any]:
        platform, channel_id = _channel(query)
        found = await self.manager.summary(platform, channel_id)
        if found is None:
            return {"summary": None}
        return {"summary": {"text": found.text, "at": found.created_at.isoformat(), "upto": found.upto_message_id}}

    # -- changes (POST /dashboard/action/NAME) ------------------------------------------------

    async def switch_persona(self, request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
        platform, channel_id = _channel(body)
        try:
            card = await self.manager.switch_persona(platform, channel_id, _text(body, "persona"), set_by="dashboard")
        except PersonaNotFound as unknown:
            raise web.HTTPBadRequest(text=f"{unknown}\n") from None
        return {"type": "persona", "channel": f"{platform}:{channel_id}", "persona": card.persona_id}

    async def delete_note(self, request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
        note_id = body.get("note")
        if not isinstance(note_id, int):
            raise web.HTTPBadRequest(text="note: the note's number\n")
        if not await self.manager.delete_note(_text(body, "platform"), note_id):
            raise web.HTTPNotFound(text="no such note\n")
        return {"type": "note_deleted", "note": note_id}

    async def forget(self, request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
        """Forgetting cannot be undone: the request must repeat the viewer's name (the confirm step)."""
        platform, user_id = _text(body, "platform"), _text(body, "id")
        record = (await self.manager.about(platform, user_id)).record
        if record is None:
            raise web.HTTPNotFound(text="no such viewer (forgotten, or never seen)\n")
        if _text(body, "confirm").strip().casefold() != record.display_name.casefold():
            raise web.HTTPBadRequest(text=f"type the viewer's name ({record.display_name}) to confirm\n")
        result = await self.manager.forget(platform, user_id)
        return {"type": "forgotten", "platform": platform, "id": user_id, "lines": result.messages}
