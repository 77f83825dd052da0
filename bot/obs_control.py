"""Optional OBS control over obs-websocket v5 (built into OBS 28+), with the ``simpleobsws`` client.

Off unless COSTAR_OBS_URL is set. With COSTAR_OBS_OVERLAY_SOURCE it shows the overlay's browser
source while the character is on stage (a reply streaming, its voice playing) and hides it
COSTAR_OBS_HIDE_AFTER_S later; moderators may switch scenes with a chat command
(:meth:`ObsControl.switch_scene`). OBS being closed is not an error for the bot: requests are
skipped and logged, and the next reply tries to reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import simpleobsws

from engine.settings import ObsSettings
from engine.stage.cues import AudioCue, Cue, NoticeCue, ReplyCue, ReplyState
from engine.stage.feed import Stage

__all__ = ["ObsControl", "ObsUnavailable"]

log = logging.getLogger(__name__)

_REQUEST_TIMEOUT_S = 5


class ObsUnavailable(Exception):
    """OBS did not answer, refused the password, or refused a request (the message says which)."""


class ObsControl:
    def __init__(self, settings: ObsSettings, stage: Stage) -> None:
        if not settings.url:
            raise ValueError("ObsControl needs COSTAR_OBS_URL")
        self.settings = settings
        self.stage = stage
        password = settings.password.get_secret_value() if settings.password else ""
        self.client = simpleobsws.WebSocketClient(url=settings.url, password=password)
        self.visible: bool | None = None  # as far as we know; None until first set
        self._on_stage_until = 0.0  # monotonic time the overlay may be hidden after
        self._hider: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one request at a time keeps show/hide in order

    # -- connection -------------------------------------------------------------------------

    async def connect(self) -> None:
        try:
            if not self.client.is_identified():
                await self.client.connect()
                if not await self._identified():
                    await self.client.disconnect()
                    raise ObsUnavailable(f"OBS at {self.settings.url} did not accept us (check COSTAR_OBS_PASSWORD)")
        except ObsUnavailable:
            raise
        except Exception as exc:  # OSError, or one of websockets' handshake errors (no common base)
            raise ObsUnavailable(f"cannot reach OBS at {self.settings.url}: {exc}") from exc

    async def _identified(self) -> bool:
        """Whether OBS accepted the Identify; a wrong password closes the socket at once (code 4009)."""
        deadline = time.monotonic() + _REQUEST_TIMEOUT_S
        while self.client.ws_open and time.monotonic() < deadline:
            if self.client.is_identified():
                return True
            await asyncio.sleep(0.02)
        return self.client.is_identified()

    async def close(self) -> None:
        if self._hider is not None:
            self._hider.cancel()
        if self.client.is_identified():
            await self.client.disconnect()

    async def request(self, request_type: str, **data: Any) -> dict[str, Any]:
        async with self._lock:
            await self.connect()
            try:
                response = await self.client.call(
                    simpleobsws.Request(request_type, data or None), timeout=_REQUEST_TIMEOUT_S
                )
            except Exception as exc:
                raise ObsUnavailable(f"OBS did not answer {request_type}: {exc}") from exc
        if not response.ok():
            status = response.requestStatus
            raise ObsUnavailable(f"OBS refused {request_type} ({status.code}): {status.comment or 'no reason given'}")
        return dict(response.responseData or {})

    # -- verbs ------------------------------------------------------------------------------

    async def switch_scene(self, name: str) -> str:
        """Switch the program scene; the name is matched without case. Returns OBS's own spelling."""
        scenes = (await self.request("GetSceneList")).get("scenes", [])
        names = [str(scene.get("sceneName")) for scene in scenes]
        match = next((scene for scene in names if scene.casefold() == name.strip().casefold()), None)
        if match is None:
            raise ObsUnavailable(f"no scene named {name!r} (scenes: {', '.join(names) or 'none'})")
        await self.request("SetCurrentProgramScene", sceneName=match)
        return match

    async def show_overlay(self, visible: bool) -> None:
        source = self.settings.overlay_source
        if source is None or visible == self.visible:
            return
        scene = self.settings.overlay_scene or (await self.request("GetCurrentProgramScene"))["currentProgramSceneName"]
        item = (await self.request("GetSceneItemId", sceneName=scene, sourceName=source))["sceneItemId"]
        await self.request("SetSceneItemEnabled", sceneName=scene, sceneItemId=item, sceneItemEnabled=visible)
        self.visible = visible

    # -- following the stage ----------------------------------------------------------------

    async def run(self) -> None:
        """Show the overlay while the character is on stage; until cancelled."""
        with self.stage.subscribe() as cues:
            async for cue in cues:
                await self._follow(cue)

    async def _follow(self, cue: Cue) -> None:
        now = time.monotonic()
        on_stage = isinstance(cue, NoticeCue | AudioCue) or (
            isinstance(cue, ReplyCue) and cue.state is not ReplyState.RETRACTED
        )
        if isinstance(cue, AudioCue):  # the voice keeps going after the text is finished
            self._on_stage_until = max(self._on_stage_until, now) + cue.duration_s
        if on_stage:
            if self._hider is not None:
                self._hider.cancel()
                self._hider = None
            await self._safely(self.show_overlay(True))
        streaming = isinstance(cue, ReplyCue) and cue.state is ReplyState.STREAMING
        if not streaming:
            self._on_stage_until = max(self._on_stage_until, now)
            if self._hider is None or self._hider.done():
                self._hider = asyncio.create_task(self._hide_later())

    async def _hide_later(self) -> None:
        while (wait := self._on_stage_until + self.settings.hide_after_s - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        await self._safely(self.show_overlay(False))

    async def _safely(self, step: Any) -> None:
        try:
            await step
        except ObsUnavailable as exc:
            log.warning("OBS: %s", exc)
