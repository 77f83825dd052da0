"""The hearing loop: audio → speech segments → text → the host's line → the character's answer.

Three things run side by side so none waits on another: the audio loop (segmenting, and the
barge-in callback the moment the host starts talking), one transcription worker (one thread:
utterances are transcribed in order, never on the event loop), and one task per answer (the
manager keeps a channel's replies in order itself).

Each transcribed line enters through ``manager.hear`` as a :class:`~engine.events.ChatEvent`
from the host (``Role.HOST``): stored like any line, and answered through the manager, so output
moderation and the stage (captions, voice) treat it like every reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import wave
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from engine.errors import EngineError, HearingUnavailable
from engine.events import ChatEvent, Reply, Role
from engine.heard import HeardLine
from engine.hearing.audio import MODEL_RATE, AudioSource, resample
from engine.hearing.recognizer import Recognizer
from engine.hearing.segmenter import Segmenter, SpeechEnded, SpeechPaused, SpeechStarted
from engine.hearing.wake import names_heard
from engine.manager import ConversationManager
from engine.settings import HearingSettings
from engine.stage.cues import HostCaptionCue
from engine.stream.outlet import Utterance

__all__ = ["HOST_ID", "HostTurn", "Listener", "TalkToggle"]

log = logging.getLogger(__name__)

HOST_ID = "host"  # the host's user id on the hearing channel: /forget and /about work with it
_HOST_ROLES = frozenset({Role.HOST, Role.BROADCASTER})

# Push-to-talk from outside (the overlay server's POST /hearing/talk, the console's /talk):
# (held, seconds at most) -> seconds until it lets go by itself, or None once released.
TalkToggle = Callable[[bool, float | None], float | None]


@dataclass
class HostTurn:
    """One utterance of the host and what came of it; times are ``time.perf_counter()``."""

    text: str
    addressed: bool
    speech_ended_at: float  # the last loud frame (live sources; replayed files are read faster)
    transcribed_at: float
    heard: HeardLine | None = None
    reply: Reply | None = None
    first_text_at: float | None = None


class Listener:
    def __init__(
        self,
        source: AudioSource,
        recognizer: Recognizer,
        manager: ConversationManager,
        settings: HearingSettings,
        *,
        on_speech_start: Callable[[], object] | None = None,
        private: bool = False,
    ) -> None:
        self.source = source
        self.recognizer = recognizer
        self.manager = manager
        self.settings = settings
        self.on_speech_start = on_speech_start  # barge-in: the voice stops here
        self.private = private  # a channel the streamer marked private: nothing of it on stream
        self.platform, self.channel_id = settings.channel.split(":", 1)
        self.segmenter = Segmenter(settings.speech_level_db, settings.end_silence_s, settings.transcribe_after_s)
        self.talk_held = settings.answer != "push_to_talk"  # push-to-talk starts released
        self.turns: list[HostTurn] = []
        self.onsets: list[float] = []  # perf_counter of each speech onset, for barge-in figures
        self._audio_origin = 0.0  # perf_counter at audio time 0, refreshed with every chunk
        self._audio_s = 0.0
        # Each ended utterance, with its early transcription when its pause became its end.
        self._utterances: asyncio.Queue[tuple[SpeechEnded, asyncio.Future[str] | None] | None] = asyncio.Queue()
        self._answers: set[asyncio.Task[None]] = set()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="hearing")
        self._early: tuple[SpeechPaused, asyncio.Future[str]] | None = None  # the pause being transcribed
        self._auto_release: asyncio.TimerHandle | None = None

    # -- push-to-talk -----------------------------------------------------------------------

    def hold(self, for_s: float | None = None) -> float:
        """Push-to-talk pressed: what the host says now is heard and answered.

        It lets go by itself after ``for_s`` seconds, and never later than COSTAR_HEARING_TALK_MAX_S:
        a "release" lost on the way (a crashed hotkey script) must not leave the host heard for
        the rest of the stream. Returns the seconds until then; pressing again restarts the count.
        """
        held_s = min(for_s, self.settings.talk_max_s) if for_s is not None else self.settings.talk_max_s
        self.talk_held = True
        if self._auto_release is not None:
            self._auto_release.cancel()
        self._auto_release = asyncio.get_running_loop().call_later(held_s, self.release)
        return held_s

    def release(self) -> None:
        """Push-to-talk released: a line being spoken ends here and is still heard."""
        if self._auto_release is not None:
            self._auto_release.cancel()
            self._auto_release = None
        if self.settings.answer == "push_to_talk":
            self.talk_held = False
            self._queue(self.segmenter.flush())

    def push_to_talk(self, held: bool, for_s: float | None = None) -> float | None:
        """The toggle's one verb (HTTP, console): hold (seconds until it lets go) or release (None)."""
        if held:
            return self.hold(for_s)
        self.release()
        return None

    # -- running ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Listen until the source ends (a file) or this task is cancelled; answers finish first."""
        worker = asyncio.create_task(self._transcribe_in_order(), name="hearing-transcribe")
        try:
            await self._listen()
            self._queue(self.segmenter.flush())
            self._utterances.put_nowait(None)
            await worker
            if self._answers:
                await asyncio.gather(*self._answers, return_exceptions=True)
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            self.source.close()
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def _listen(self) -> None:
        async for chunk in self.source.chunks():
            samples = resample(chunk.samples, chunk.sample_rate)
            self._audio_s += len(samples) / MODEL_RATE
            self._audio_origin = time.perf_counter() - self._audio_s
            if not self.talk_held:
                continue
            for event in self.segmenter.feed(samples):
                if isinstance(event, SpeechStarted):
                    self._speech_started(event)
                elif isinstance(event, SpeechPaused):
                    self._transcribe_early(event)
                else:
                    self._queue(event)

    def _speech_started(self, event: SpeechStarted) -> None:
        self.onsets.append(self._audio_origin + event.at_s)
        if self.settings.barge_in and self.on_speech_start is not None:
            self.on_speech_start()

    def _transcribe_early(self, pause: SpeechPaused) -> None:
        """Transcribe the utterance while the end silence runs out (COSTAR_HEARING_TRANSCRIBE_AFTER_S):
        if the host stays quiet, its text is ready when the line ends instead of a recognizer's run later.

        An earlier pause's transcription that has not started is dropped (the host spoke again, so
        it will never be the line); one already running finishes and is thrown away.
        """
        if self._early is not None:
            self._early[1].cancel()
        early = asyncio.get_running_loop().run_in_executor(self._executor, self.recognizer.transcribe, pause.samples)
        early.add_done_callback(_retrieve)
        self._early = (pause, early)

    def _early_transcript(self, utterance: SpeechEnded) -> asyncio.Future[str] | None:
        """The early transcription of ``utterance``, if its pause became its end."""
        early, self._early = self._early, None
        if early is None or not early[0].ends(utterance) or early[1].cancelled():
            return None
        return early[1]

    def _queue(self, utterance: SpeechEnded | None) -> None:
        if utterance is not None:
            self._utterances.put_nowait((utterance, self._early_transcript(utterance)))

    async def _transcribe_in_order(self) -> None:
        loop = asyncio.get_running_loop()
        while (queued := await self._utterances.get()) is not None:
            utterance, early = queued
            ended_at = self._audio_origin + utterance.end_s
            if self.settings.debug_audio_dir is not None:
                await loop.run_in_executor(
                    self._executor, _keep_for_debugging, self.settings.debug_audio_dir, utterance
                )
            try:
                if early is not None:
                    text = await early
                else:
                    text = await loop.run_in_executor(self._executor, self.recognizer.transcribe, utterance.samples)
            except HearingUnavailable as exc:
                log.error("hearing: %s", exc)
                continue
            if text:
                self._take(text, ended_at)

    def _take(self, text: str, ended_at: float) -> None:
        turn = HostTurn(text, addressed=False, speech_ended_at=ended_at, transcribed_at=time.perf_counter())
        self.turns.append(turn)
        task = asyncio.create_task(self._answer(turn), name="hearing-answer")
        self._answers.add(task)
        task.add_done_callback(self._answers.discard)

    # -- answering --------------------------------------------------------------------------

    async def _answer(self, turn: HostTurn) -> None:
        try:
            turn.addressed = await self._addressed(turn.text)
            turn.heard = heard = await self.manager.hear(self._event(turn))
            self._caption(heard)
            log.info("hearing: the host said %r%s", turn.text, "" if turn.addressed else " (not answered)")
            if turn.addressed and not heard.blocked:
                async for item in self.manager.generate(heard):
                    if turn.first_text_at is None:
                        turn.first_text_at = time.perf_counter()
                    if isinstance(item, Reply):
                        turn.reply = item
                        await self._write_in_chat(item)
        except EngineError as exc:  # chat goes on; the host sees why in the log
            log.error("hearing: could not answer %r: %s", turn.text, exc)

    def _caption(self, heard: HeardLine) -> None:
        """COSTAR_HEARING_CAPTIONS: the host's line as a live caption (pages with captions=host).

        Never for a private conversation, and not a line input moderation refused (it judges
        the lines that address the character): the same rule as the chat line a caption answers.
        """
        refused = heard.verdict is not None and not heard.verdict.passes
        if not self.settings.captions or heard.event.private or refused:
            return
        stage = self.manager.stage
        event = heard.event
        shown = heard.verdict.text if heard.verdict is not None and heard.verdict.text else event.text
        stage.publish(HostCaptionCue(stage.new_id(), event.channel_key, event.author_name, shown, event.author_id))

    async def _write_in_chat(self, reply: Reply) -> None:
        """COSTAR_HEARING_REPLY_IN_CHAT: the spoken answer, also through that chat's own send path."""
        if self.settings.reply_in_chat is None:
            return
        platform, channel_id = self.settings.reply_in_chat.split(":", 1)
        if self.manager.muted(self.settings.reply_in_chat):  # the dashboard's or chat's mute
            log.info("hearing: %s is muted, so the answer is not written there", self.settings.reply_in_chat)
            return
        if not self.manager.chats.has(platform):
            log.warning("hearing: no %s adapter is running, so the answer is not written in chat", platform)
            return
        # Posted as a line of its own (no thread): the host's words were spoken, not typed there.
        in_chat = replace(reply, event=replace(reply.event, platform=platform, channel_id=channel_id))
        if await self.manager.chats.post(platform, Utterance(in_chat, kind="hearing", urgent=False)) is None:
            log.info("hearing: %s held the answer back (its send limits)", platform)

    async def _addressed(self, text: str) -> bool:
        if self.settings.answer != "addressed":
            return True  # always, or push-to-talk (heard only while held)
        persona = await self.manager.persona_for(self.platform, self.channel_id)
        return names_heard(text, {persona.name, persona.display_name})

    def _event(self, turn: HostTurn) -> ChatEvent:
        return ChatEvent(
            platform=self.platform,
            channel_id=self.channel_id,
            author_id=HOST_ID,
            author_name=self.settings.host_name,
            text=turn.text,
            roles=_HOST_ROLES,
            addresses_bot=turn.addressed,
            private=self.private,
        )


def _retrieve(future: asyncio.Future[str]) -> None:
    """An early transcription nobody awaits (the host spoke again) must not log "never retrieved"."""
    if not future.cancelled():
        future.exception()


def _keep_for_debugging(folder: Path, utterance: SpeechEnded) -> None:
    """COSTAR_HEARING_DEBUG_AUDIO_DIR only: the one place audio is written to disk."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        pcm = (np.clip(utterance.samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        with wave.open(str(folder / f"utterance-{time.time_ns()}.wav"), "wb") as writer:
            writer.setnchannels(1)
            writer.setsampwidth(2)
            writer.setframerate(MODEL_RATE)
            writer.writeframes(pcm)
    except OSError as exc:
        log.warning("hearing: cannot keep audio in %s: %s", folder, exc)
