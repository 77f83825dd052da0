"""The character on the stream itself: the captions overlay, its voice and OBS control, each optional.

``await OnStream.start(settings, manager)`` starts what is configured — the overlay with
COSTAR_OVERLAY_PORT, the voice when a persona card has a ``voice:`` section, OBS control with
COSTAR_OBS_URL, hearing the host with COSTAR_HEARING_ENABLED — and ``close()`` stops it. All of it
follows ``manager.stage``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from dataclasses import dataclass, field

from bot.dashboard.server import DashboardServer, dashboard_tokens
from bot.hearing import Hearing, start_hearing
from bot.obs_control import ObsControl, ObsUnavailable
from bot.overlay.server import OverlayServer, card_styles, overlay_token
from bot.platforms import channel_is_private
from engine.hearing.listener import TalkToggle
from engine.manager import ConversationManager
from engine.settings import Settings
from engine.voice.speaker import Voice, card_voices

__all__ = ["OnStream", "start_dashboard"]

log = logging.getLogger(__name__)


@dataclass
class OnStream:
    overlay: OverlayServer | None = None
    dashboard: DashboardServer | None = None
    obs: ObsControl | None = None
    voice: Voice | None = None  # hearing's barge-in hushes it
    hearing: Hearing | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def start(cls, settings: Settings, manager: ConversationManager) -> OnStream:
        on_stream = cls()
        cards = manager.personas.cards
        if settings.overlay.port is not None:
            token = await asyncio.to_thread(overlay_token, settings)
            on_stream.overlay = OverlayServer(
                manager.stage,
                card_styles(cards),
                host=settings.overlay.host,
                port=settings.overlay.port,
                token=token,
                default_persona=settings.core.default_persona,
                control_token=await _talk_token(settings),
            )
            await on_stream.overlay.start()
            shown = on_stream.overlay.url.split("?")[0]
            if token:  # beyond loopback only: a page on this machine needs no token
                log.info(
                    "Overlay for OBS on %s?token=… (the token is in %s)",
                    shown,
                    "COSTAR_OVERLAY_TOKEN" if settings.overlay.token else "DATA_DIR/overlay-token",
                )
            else:
                log.info("Overlay for OBS on %s", shown)
        if settings.dashboard.enabled:
            on_stream.dashboard = await start_dashboard(settings, manager)
        # Speech needs a listener: the overlay page plays it, or COSTAR_VOICE_OUT_DIR keeps it.
        heard_somewhere = on_stream.overlay is not None or settings.voice.out_dir is not None
        if (
            settings.voice.enabled
            and heard_somewhere
            and any(card.voice and card.voice.enabled for card in cards.values())
        ):
            voices = card_voices(cards, manager.personas.sources, settings.voice)
            voice = Voice(manager.stage, voices, metrics=manager.metrics, out_dir=settings.voice.out_dir)
            on_stream.voice = voice
            on_stream.tasks.append(asyncio.create_task(voice.run(), name="voice"))
        on_stream.hearing = await start_hearing(
            settings.hearing, manager, on_stream.voice, private=_hearing_is_private(settings)
        )
        if on_stream.hearing is not None:
            on_stream.tasks.append(on_stream.hearing.task)
            on_stream._offer_push_to_talk(settings)
        if settings.obs.url:
            on_stream.obs = ObsControl(settings.obs, manager.stage)
            try:
                await on_stream.obs.connect()
            except ObsUnavailable as exc:
                log.warning("OBS: %s; retrying when needed", exc)
            on_stream.tasks.append(asyncio.create_task(on_stream.obs.run(), name="obs"))
        return on_stream

    @property
    def talk(self) -> TalkToggle | None:
        """Push-to-talk for the console's /talk, when hearing runs in that mode."""
        if self.hearing is None or self.hearing.listener.settings.answer != "push_to_talk":
            return None
        return self.hearing.listener.push_to_talk

    def _offer_push_to_talk(self, settings: Settings) -> None:
        if self.talk is None:
            return
        if self.overlay is None:
            log.info("Push-to-talk: /talk in the console; set COSTAR_OVERLAY_PORT for a hotkey's HTTP toggle")
            return
        self.overlay.talk = self.talk
        log.info(
            "Push-to-talk for a hotkey: POST %s/hearing/talk?held=true|false&token=… (the token is in %s)",
            self.overlay.base,
            "COSTAR_OVERLAY_TOKEN" if settings.overlay.token else "DATA_DIR/overlay-token",
        )

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.obs is not None:
            await self.obs.close()
        if self.overlay is not None:
            await self.overlay.close()
        if self.dashboard is not None:
            await self.dashboard.close()


async def start_dashboard(settings: Settings, manager: ConversationManager) -> DashboardServer:
    """Serve the dashboard; print its URL, and the login tokens at the first start only."""
    tokens = await asyncio.to_thread(dashboard_tokens, settings)
    dashboard = DashboardServer(manager, settings.dashboard, tokens)
    await dashboard.start()
    log.info("Dashboard on %s", dashboard.url)
    if tokens.made:
        # Straight to the terminal, not the log: the log redacts the tokens, and this is their one showing.
        shown = {"moderator": tokens.moderator, "read-only": tokens.read_only}
        lines = [f"  {role.value} token: {shown[role.value]}" for role in tokens.made]
        print(
            f"Dashboard {dashboard.url} - log in with (shown once; kept in DATA_DIR/dashboard-*token):",
            *lines,
            sep="\n",
            file=sys.stderr,
            flush=True,
        )
    return dashboard


async def _talk_token(settings: Settings) -> str | None:
    """Push-to-talk changes what the character hears: it takes a token even on loopback."""
    if not (settings.hearing.enabled and settings.hearing.answer == "push_to_talk"):
        return None
    return await asyncio.to_thread(overlay_token, settings, even_on_loopback=True)


def _hearing_is_private(settings: Settings) -> bool:
    """The host's lines join a channel its platform keeps off stream (a Discord channel in
    DISCORD_PRIVATE_CHANNELS): like that channel's chat, neither they nor the answers reach the stream."""
    return channel_is_private(settings, settings.hearing.channel)
