"""The voice on the stage: speaks each reply sentence by sentence while it is still streaming.

It listens for reply cues (only text that passed output moderation is ever published), cuts
them into sentences, synthesises each in a worker thread and publishes an :class:`AudioCue` per
sentence in order. A retracted reply stops at once: queued sentences are dropped, a synthesis
already running is thrown away when it returns, and an :class:`AudioStop` tells the page to
stop what it is playing. The first audio of each reply is timed from the chat line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import VoiceUnavailable
from engine.observability.metrics import Metrics
from engine.settings import VoiceSettings
from engine.stage.cues import AudioCue, AudioStop, Cue, NoticeCue, ReplyCue, ReplyState
from engine.stage.feed import Stage
from engine.voice.sentences import SentenceCutter
from engine.voice.synth import Synthesizer, synthesizer_for, wav_info
from personas.card import PersonaCard

__all__ = ["Voice", "card_voices"]

log = logging.getLogger(__name__)


@dataclass
class _Speech:
    """One reply being spoken: its sentences wait in ``queue`` for the reply's own worker."""

    cue: ReplyCue | NoticeCue
    synthesizer: Synthesizer
    heard_at: float | None
    cutter: SentenceCutter = field(default_factory=SentenceCutter)
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    stopped: bool = False
    spoken: int = 0  # sentences published (also the next clip's seq)
    worker: asyncio.Task[None] | None = None


class Voice:
    def __init__(
        self,
        stage: Stage,
        synthesizer_for: Callable[[str], Synthesizer | None],
        *,
        metrics: Metrics | None = None,
        out_dir: Path | None = None,
    ) -> None:
        self.stage = stage
        self.synthesizer_for = synthesizer_for  # persona id -> its voice, None for a silent persona
        self.metrics = metrics
        self.out_dir = out_dir
        self._speeches: dict[str, _Speech] = {}
        # Sentences published but perhaps still playing on the page: cue id -> (cue, when it ends).
        self._playing: dict[str, tuple[ReplyCue | NoticeCue, float]] = {}
        # The same replies' sentences with when the page starts each: what a stop cuts them after.
        self._started: dict[str, list[tuple[float, str]]] = {}
        self._subscription = stage.subscribe(lambda cue: isinstance(cue, ReplyCue | NoticeCue))

    async def run(self) -> None:
        """Speak until cancelled."""
        try:
            async for cue in self._subscription:
                self.take(cue)
        finally:
            self._subscription.close()
            for speech in list(self._speeches.values()):
                self._stop(speech, announce=False)

    def take(self, cue: Cue) -> None:
        if isinstance(cue, NoticeCue):
            speech = self._start(cue, heard_at=None)
            if speech is not None:
                self._speak(speech, cue.text, final=True)
            return
        if not isinstance(cue, ReplyCue):
            return
        speech = self._speeches.get(cue.cue_id) or self._start(cue, heard_at=cue.heard_at or None)
        if speech is None or speech.stopped:
            return
        if cue.state is ReplyState.RETRACTED:
            self._stop(speech, announce=True)
        else:
            self._speak(speech, cue.text, final=cue.state is ReplyState.DONE)

    def hush(self) -> list[str]:
        """The host started talking (barge-in): stop every reply being spoken or still playing.

        Queued and synthesising sentences are dropped and an :class:`AudioStop` tells the page to
        stop what it plays; the caption finishes as it would. Each reply cut short is reported to
        ``stage.cuts`` with the sentences the page had started, so memory keeps only what was said.
        Returns the cue ids cut short.
        """
        now = time.perf_counter()
        cut: list[str] = []
        for speech in list(self._speeches.values()):
            self._stop(speech, announce=True)
            cut.append(speech.cue.cue_id)
        for cue_id, (cue, ends_at) in self._playing.items():
            if ends_at > now and cue_id not in cut:
                self.stage.publish(AudioStop(cue_id, cue.channel, cue.persona_id))
                cut.append(cue_id)
        self._playing.clear()
        for cue_id in cut:
            started = self._started.pop(cue_id, [])
            self.stage.cuts.cut(cue_id, " ".join(sentence for starts_at, sentence in started if starts_at <= now))
        self._started.clear()
        return cut

    def _start(self, cue: ReplyCue | NoticeCue, heard_at: float | None) -> _Speech | None:
        if isinstance(cue, ReplyCue) and cue.state is ReplyState.RETRACTED:
            return None
        synthesizer = self.synthesizer_for(cue.persona_id)
        if synthesizer is None:
            return None
        speech = _Speech(cue, synthesizer, heard_at)
        speech.worker = asyncio.create_task(self._work(speech), name=f"voice-{cue.cue_id}")
        self._speeches[cue.cue_id] = speech
        return speech

    def _speak(self, speech: _Speech, text: str, *, final: bool) -> None:
        cut = speech.cutter.feed(text, final=final)
        if cut.rewritten and speech.spoken:
            self._silence(speech)  # moderation changed words already queued: start this text afresh
        for sentence in cut.sentences:
            speech.queue.put_nowait(sentence)
        if final:
            speech.queue.put_nowait(None)

    def _silence(self, speech: _Speech) -> None:
        while not speech.queue.empty():
            speech.queue.get_nowait()
        self.stage.publish(AudioStop(speech.cue.cue_id, speech.cue.channel, speech.cue.persona_id))

    def _stop(self, speech: _Speech, *, announce: bool) -> None:
        speech.stopped = True
        self._speeches.pop(speech.cue.cue_id, None)
        if speech.worker is not None:
            speech.worker.cancel()  # a synthesis still running in its thread is thrown away when it returns
        if announce:
            self.stage.publish(AudioStop(speech.cue.cue_id, speech.cue.channel, speech.cue.persona_id))

    async def _work(self, speech: _Speech) -> None:
        try:
            while (sentence := await speech.queue.get()) is not None:
                try:
                    wav = await asyncio.to_thread(self._render, speech, sentence, speech.spoken)
                except VoiceUnavailable as exc:
                    log.error("voice: %s", exc)
                    continue
                self._publish(speech, sentence, wav)
        finally:
            if self._speeches.get(speech.cue.cue_id) is speech and not speech.stopped:
                del self._speeches[speech.cue.cue_id]

    def _render(self, speech: _Speech, sentence: str, seq: int) -> bytes:
        """Worker thread: synthesise, and keep a copy on disk when COSTAR_VOICE_OUT_DIR asks for it."""
        wav = speech.synthesizer.synthesize(sentence)
        if self.out_dir is not None:
            try:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                (self.out_dir / f"{speech.cue.cue_id}-{seq:03d}.wav").write_bytes(wav)
            except OSError as exc:
                log.warning("voice: cannot write to %s: %s", self.out_dir, exc)
        return wav

    def _publish(self, speech: _Speech, sentence: str, wav: bytes) -> None:
        cue = speech.cue
        if speech.spoken == 0 and speech.heard_at is not None and self.metrics is not None:
            self.metrics.first_audio(cue.channel.split(":", 1)[0], time.perf_counter() - speech.heard_at)
        duration_s = wav_info(wav).duration_s
        self.stage.publish(AudioCue(cue.cue_id, cue.channel, cue.persona_id, speech.spoken, sentence, wav, duration_s))
        speech.spoken += 1
        # The page plays a reply's sentences one after another: it talks until the last one ends.
        _, ends_at = self._playing.get(cue.cue_id, (cue, 0.0))
        starts_at = max(ends_at, time.perf_counter())
        self._playing[cue.cue_id] = (cue, starts_at + duration_s)
        self._started.setdefault(cue.cue_id, []).append((starts_at, sentence))
        now = time.perf_counter()
        for cue_id in [cue_id for cue_id, (_, ends) in self._playing.items() if ends < now]:
            del self._playing[cue_id]
            if cue_id not in self._speeches:  # nothing more will be said of it: nothing to cut
                self._started.pop(cue_id, None)


def card_voices(
    cards: Mapping[str, PersonaCard], sources: Mapping[str, Path | None], settings: VoiceSettings
) -> Callable[[str], Synthesizer | None]:
    """persona id -> its voice, from the card's ``voice:`` section; built on first use, kept after.

    A voice that cannot be built (espeak-ng missing, no piper voice file) is reported once, and
    that persona stays silent rather than failing every reply.
    """
    built: dict[str, Synthesizer | None] = {}

    def voice_of(persona_id: str) -> Synthesizer | None:
        if persona_id not in built:
            card = cards.get(persona_id)
            built[persona_id] = None
            if settings.enabled and card is not None and card.voice is not None and card.voice.enabled:
                source = sources.get(persona_id)
                try:
                    built[persona_id] = synthesizer_for(
                        card.voice, card_dir=source.parent if source else None, espeak_binary=settings.espeak_binary
                    )
                except VoiceUnavailable as exc:
                    log.error("voice for %s is off: %s", persona_id, exc)
        return built[persona_id]

    return voice_of
