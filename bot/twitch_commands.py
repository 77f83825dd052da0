"""Chat commands: ``!persona`` (show), ``!persona <name>`` (broadcaster and mods), ``!forgetme``,
``!scene <name>`` (broadcaster and mods; only when OBS control is configured), and
``!costar mute`` / ``!costar unmute`` (broadcaster and mods: the dashboard's mute button for this
channel; no cooldown, a panic button must always work).

Commands are answered directly, never queued behind the flood, but each has a cooldown so a
room full of people typing ``!persona`` costs one message, not fifty. A command on cooldown, or
a switch asked for by someone who may not switch, is swallowed silently: answering it would
spend the send budget on exactly the spam the cooldown is there to stop.

``!forgetme`` is the exception: it is never swallowed. Anyone may send it and each one holds the
database's write lock for a while (about a second on a million stored lines), so a channel runs
at most ``forgets_per_minute`` of them a minute; the rest wait their turn in order, and a viewer
who asks again while their forget waits is covered by the one already waiting. The cooldown only
decides whether the confirmation is said.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from bot.obs_control import ObsUnavailable
from engine.errors import PersonaNotFound
from engine.events import ChatEvent
from engine.flow.clock import Clock
from engine.flow.cooldown import Cooldown
from engine.flow.ratelimit import SendBudget
from engine.flow.recent import RecentlyUsed

__all__ = ["ChatCommands", "CommandResult", "PersonaManager", "SceneSwitcher"]

logger = logging.getLogger(__name__)


class PersonaManager(Protocol):
    """The part of ConversationManager the commands use."""

    async def persona_for(self, platform: str, channel_id: str, server_id: str | None = None) -> object: ...

    async def switch_persona(
        self, platform: str, scope_id: str, name: str, *, scope: str = "channel", set_by: str | None = None
    ) -> object: ...

    async def forget(self, platform: str, user_id: str) -> object: ...

    async def mute(self, scope: str, muted: bool = True) -> None: ...


class SceneSwitcher(Protocol):
    """What ``!scene`` needs (bot.obs_control.ObsControl): OBS's spelling of the scene it switched to."""

    async def switch_scene(self, name: str) -> str: ...


@dataclass(frozen=True, slots=True)
class CommandResult:
    reply: str | None = None
    persona_changed: bool = False
    forgot: bool = False  # the asker was forgotten: their lines still queued must go too


FORGET_WINDOW_S = 60.0


class ChatCommands:
    def __init__(
        self,
        manager: PersonaManager,
        *,
        clock: Clock,
        cooldown_s: float,
        forgets_per_minute: int = 6,
        prefix: str = "!",
        scenes: SceneSwitcher | None = None,
    ) -> None:
        self.manager = manager
        self.scenes = scenes
        self.clock = clock
        self.cooldown_s = cooldown_s
        self.forgets_per_minute = forgets_per_minute
        self.prefix = prefix
        self._cooldown: Cooldown[tuple[str, ...]] = Cooldown(cooldown_s, clock=clock)
        # Per channel, the most recently active only (engine.flow.recent); one still counting stays.
        self._forget_budgets: RecentlyUsed[str, SendBudget] = RecentlyUsed(
            evictable=lambda budget: not budget.in_window()
        )
        self._forgets_waiting: set[tuple[str, str]] = set()  # (channel, viewer) asked, not yet run

    def is_command(self, event: ChatEvent) -> bool:
        name = self._parse(event.text)[0]
        return name in {"persona", "forgetme", "costar"} or (name == "scene" and self.scenes is not None)

    async def handle(self, event: ChatEvent) -> CommandResult | None:
        """Run the command in ``event``; None when the line is not one of ours."""
        name, argument = self._parse(event.text)
        if name == "persona" and argument:
            return await self._switch(event, argument)
        if name == "persona":
            return await self._show(event)
        if name == "forgetme":
            return await self._forget(event)
        if name == "scene" and self.scenes is not None:
            return await self._scene(event, self.scenes, argument)
        if name == "costar":
            return await self._mute(event, argument.casefold())
        return None

    def _parse(self, text: str) -> tuple[str, str]:
        stripped = text.strip()
        if not stripped.startswith(self.prefix):
            return "", ""
        head, _, rest = stripped[len(self.prefix) :].partition(" ")
        return head.casefold(), rest.strip()

    def _cooling(self, *key: str) -> bool:
        """True when ``key`` was used within the cooldown; otherwise marks it used now."""
        return not self._cooldown.try_use(key)

    async def _switch(self, event: ChatEvent, wanted: str) -> CommandResult:
        if not event.is_moderator or self._cooling(event.channel_key, "switch", event.author_id):
            return CommandResult()
        try:
            # The id, not the display name: a name is what a viewer chose, and forget clears ids.
            card = await self.manager.switch_persona(event.platform, event.channel_id, wanted, set_by=event.author_id)
        except PersonaNotFound as exc:
            return CommandResult(reply=f"@{event.author_name} {exc}")
        return CommandResult(reply=f"Now playing {_name(card)}.", persona_changed=True)

    async def _mute(self, event: ChatEvent, action: str) -> CommandResult:
        if not event.is_moderator or action not in ("mute", "unmute"):
            return CommandResult()
        await self.manager.mute(event.channel_key, action == "mute")
        # Muted: nothing may be said, this answer included (the dashboard shows the mute in red).
        return CommandResult(reply="Unmuted: talking again." if action == "unmute" else None)

    async def _show(self, event: ChatEvent) -> CommandResult:
        if self._cooling(event.channel_key, "show"):
            return CommandResult()
        card = await self.manager.persona_for(event.platform, event.channel_id, event.server_id)
        return CommandResult(reply=f"Current persona: {_name(card)}.")

    async def _forget(self, event: ChatEvent) -> CommandResult:
        asked = (event.channel_key, event.author_id)
        if asked in self._forgets_waiting:
            return CommandResult()  # the forget already waiting runs later and covers this line too
        budget = self._forget_budgets.get(event.channel_key)
        if budget is None:
            budget = self._forget_budgets[event.channel_key] = SendBudget(
                self.forgets_per_minute, FORGET_WINDOW_S, clock=self.clock
            )
        self._forgets_waiting.add(asked)
        try:
            turn = await budget.acquire()  # every waiting forget runs, in about the order asked
        finally:
            # From here a new request is a new forget: lines stored meanwhile may escape this one.
            self._forgets_waiting.discard(asked)
        try:
            await self.manager.forget(event.platform, event.author_id)
        finally:
            turn.sent()
        logger.info("forgot %s on %s at their request", event.author_id, event.platform)
        if self._cooling(event.channel_key, "forget", event.author_id):
            return CommandResult(forgot=True)  # forgotten all the same: only the answer is skipped
        return CommandResult(reply=f"@{event.author_name} done: I no longer remember anything you said.", forgot=True)

    async def _scene(self, event: ChatEvent, scenes: SceneSwitcher, wanted: str) -> CommandResult:
        if not event.is_moderator or not wanted or self._cooling(event.channel_key, "scene", event.author_id):
            return CommandResult()
        try:
            switched = await scenes.switch_scene(wanted)
        except ObsUnavailable as exc:
            logger.warning("!scene %s: %s", wanted, exc)
            return CommandResult(reply=f"@{event.author_name} {exc}")
        return CommandResult(reply=f"Scene: {switched}.")


def _name(card: object) -> str:
    return str(getattr(card, "name", card))
