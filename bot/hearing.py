"""Starts hearing the host when COSTAR_HEARING_ENABLED is set (docs/hearing.md).

Anything missing — PortAudio, a microphone, the device named, the model — is one clear line in
the log and the bot keeps chatting; so is a device that disappears mid-stream.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from engine.errors import HearingUnavailable
from engine.hearing.audio import AudioSource, FileSource
from engine.hearing.listener import Listener
from engine.hearing.recognizer import recognizer_for
from engine.manager import ConversationManager
from engine.settings import HearingSettings
from engine.voice.speaker import Voice

__all__ = ["Hearing", "open_source", "start_hearing"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Hearing:
    listener: Listener
    task: asyncio.Task[None]


def open_source(settings: HearingSettings) -> AudioSource:
    """The configured source; lists the devices when it is a microphone (blocking: PortAudio)."""
    if settings.source == "microphone":
        from engine.hearing.microphone import MicrophoneSource

        return MicrophoneSource(settings.device, sample_rate=settings.sample_rate)
    # A replayed file is paced like a live microphone, so barge-in and timing behave as live.
    return FileSource(Path(settings.source) if settings.source != "-" else "-", sample_rate=settings.sample_rate,
                      realtime=settings.source != "-")  # fmt: skip


async def start_hearing(
    settings: HearingSettings, manager: ConversationManager, voice: Voice | None, *, private: bool = False
) -> Hearing | None:
    """The listener and its task, or None (hearing off, or it cannot start: said in one line)."""
    if not settings.enabled:
        return None
    try:
        source = await asyncio.to_thread(open_source, settings)
        recognizer = await asyncio.to_thread(recognizer_for, settings.model_path, settings.model_arch)
    except HearingUnavailable as exc:
        log.error("Hearing is off: %s", exc)
        return None
    log.info("Hearing the host (%s mode): %s", settings.answer, source.describe())
    if voice is None:
        log.warning("Hearing: no voice is on, so answers are captioned only (docs/hearing.md)")
    on_speech_start = voice.hush if voice else None
    listener = Listener(source, recognizer, manager, settings, on_speech_start=on_speech_start, private=private)
    return Hearing(listener, asyncio.create_task(_listen(listener), name="hearing"))


async def _listen(listener: Listener) -> None:
    try:
        await listener.run()
    except HearingUnavailable as exc:  # the device went away, audio it cannot read
        log.error("Hearing stopped: %s; chat goes on", exc)
