"""Approve-before-send: finished, moderated replies held for the streamer's decision.

A channel, a platform or everything (``*``) can be set to ``off``, ``approve`` (every reply is
held) or ``approve_first_N_minutes`` (held for the first N minutes after the bot started). A held
reply waits for send, edit-then-send or drop; one that waits longer than the stale time is
dropped, and its line counts as unanswered.
"""

from __future__ import annotations

import asyncio
import enum
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import SettingsError
from engine.events import Reply

__all__ = ["Approvals", "Decision", "HeldReply", "parse_approvals"]

_FIRST_MINUTES = re.compile(r"approve_first_(\d+)_minutes")


class Decision(enum.StrEnum):
    APPROVED = "approved"
    EDITED = "edited"
    DROPPED = "dropped"
    STALE = "stale"


@dataclass(slots=True)
class HeldReply:
    held_id: str
    reply: Reply
    held_at: float  # time.time(): the page shows how long it has waited
    stale_at: float
    decided: asyncio.Future[tuple[Decision, str]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def wire(self) -> dict[str, Any]:
        event = self.reply.event
        return {
            "type": "held",
            "id": self.held_id,
            "channel": event.channel_key,
            "persona": self.reply.persona_id,
            "name": self.reply.persona_name,
            "text": self.reply.text,
            "answering": {"author": event.author_name, "text": event.text},
            "held_at": self.held_at,
            "stale_at": self.stale_at,
        }


def parse_approvals(setting: str, variable: str = "COSTAR_DASHBOARD_APPROVE") -> dict[str, str]:
    """``twitch=approve,discord:123=approve_first_10_minutes`` -> {scope: mode}; one line on a bad one."""
    modes: dict[str, str] = {}
    for part in (piece.strip() for piece in setting.split(",")):
        if not part:
            continue
        scope, equals, mode = (text.strip() for text in part.partition("="))
        if not equals or not scope or not (mode in ("off", "approve") or _FIRST_MINUTES.fullmatch(mode)):
            raise SettingsError(
                f"{variable}: {part!r} is not SCOPE=MODE (SCOPE: *, a platform or platform:channel; "
                "MODE: off, approve or approve_first_N_minutes)"
            )
        modes[scope] = mode
    return modes


class Approvals:
    """Which channels hold their replies, and the replies held now."""

    def __init__(self, modes: Mapping[str, str], *, stale_s: float, started_at: float | None = None) -> None:
        self.modes = dict(modes)
        self.stale_s = stale_s
        self.started_at = time.monotonic() if started_at is None else started_at
        self.held: dict[str, HeldReply] = {}

    def mode_for(self, channel_key: str) -> str:
        platform = channel_key.split(":", 1)[0]
        for scope in (channel_key, platform, "*"):
            if scope in self.modes:
                return self.modes[scope]
        return "off"

    def set_mode(self, scope: str, mode: str) -> None:
        parse_approvals(f"{scope}={mode}", "mode")  # the same check as the setting
        self.modes[scope] = mode

    def needed(self, channel_key: str) -> bool:
        mode = self.mode_for(channel_key)
        if mode == "approve":
            return True
        first = _FIRST_MINUTES.fullmatch(mode)
        return first is not None and time.monotonic() - self.started_at < int(first.group(1)) * 60

    def hold(self, reply: Reply) -> HeldReply:
        now = time.time()
        held = HeldReply(uuid.uuid4().hex[:12], reply, now, now + self.stale_s)
        self.held[held.held_id] = held
        return held

    async def decision(self, held: HeldReply) -> tuple[Decision, str]:
        """What the streamer decided (and the text to send), or STALE after the stale time."""
        try:
            return await asyncio.wait_for(asyncio.shield(held.decided), self.stale_s)
        except TimeoutError:
            return Decision.STALE, held.reply.text
        finally:
            self.held.pop(held.held_id, None)

    def decide(self, held_id: str, decision: Decision, text: str) -> bool:
        """Settle a held reply; False when it is no longer waiting (sent, dropped or stale)."""
        held = self.held.get(held_id)
        if held is None or held.decided.done():
            return False
        held.decided.set_result((decision, text))
        return True
