"""Where the host's speech starts and ends, by loudness over 20 ms frames.

Moonshine segments by itself too, but its line events come every half second: too late for
barge-in (the voice must stop within 200 ms of the host starting to talk). This detector sees
an onset after ``onset_frames`` loud frames (60 ms) and ends an utterance after ``end_silence_s``
of quiet. After ``pause_s`` of quiet it says the host *paused* (:class:`SpeechPaused`), with the
utterance as it would end there, so the listener can transcribe it while the end silence runs out:
an utterance carries only ``pause_s`` of its trailing quiet, so when the pause becomes the end the
two hold the same samples and the early transcript is the transcript.

Loud means above ``speech_level_db`` and well above the room's noise floor, which it follows
while nobody talks, so a fan or game audio under the threshold does not count as speech.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from engine.hearing.audio import MODEL_RATE, Samples

__all__ = ["Segmenter", "SpeechEnded", "SpeechPaused", "SpeechStarted"]

_FRAME_S = 0.02
_PRE_ROLL_S = 0.3  # kept before the onset: the first consonant is quieter than the vowel that trips it
_NOISE_MARGIN_DB = 12.0  # speech is this much louder than the room's noise
_MAX_UTTERANCE_S = 20.0  # a line nobody ends (music left on) is cut and transcribed anyway
_MIN_SPEECH_S = 0.25  # shorter bursts are a cough, a click or a key


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    at_s: float  # audio time of the first loud frame, from the start of the source


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    samples: Samples  # 16 kHz mono, pre-roll included, and at most ``pause_s`` of the quiet after it
    start_s: float
    end_s: float  # audio time of the last loud frame

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True, slots=True)
class SpeechPaused:
    """``pause_s`` of quiet: the utterance so far, which is the whole one if the quiet lasts."""

    samples: Samples
    start_s: float
    end_s: float

    def ends(self, ended: SpeechEnded) -> bool:
        """Whether ``ended`` is this pause become the end (no speech in between)."""
        return (ended.start_s, ended.end_s, len(ended.samples)) == (self.start_s, self.end_s, len(self.samples))


@dataclass
class Segmenter:
    speech_level_db: float = -40.0
    end_silence_s: float = 0.5
    pause_s: float = 0.2
    onset_frames: int = 3
    frame_samples: int = int(MODEL_RATE * _FRAME_S)
    noise_db: float = -70.0
    _buffer: Samples = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    _pre_roll: deque[Samples] = field(default_factory=deque)
    _speech: list[Samples] = field(default_factory=list)
    _loud_run: int = 0
    _quiet_run: int = 0
    _frames_seen: int = 0
    _start_s: float | None = None
    _last_loud_s: float = 0.0

    @property
    def speaking(self) -> bool:
        return self._start_s is not None

    def feed(self, samples: Samples) -> list[SpeechStarted | SpeechPaused | SpeechEnded]:
        """16 kHz mono samples in; what happened in them out (usually nothing)."""
        self._buffer = np.concatenate((self._buffer, samples))
        events: list[SpeechStarted | SpeechPaused | SpeechEnded] = []
        while len(self._buffer) >= self.frame_samples:
            frame, self._buffer = self._buffer[: self.frame_samples], self._buffer[self.frame_samples :]
            event = self._frame(frame)
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> SpeechEnded | None:
        """The audio ended: a line still being spoken ends here."""
        return self._end() if self.speaking else None

    def _frame(self, frame: Samples) -> SpeechStarted | SpeechPaused | SpeechEnded | None:
        now_s = self._frames_seen * _FRAME_S
        self._frames_seen += 1
        level = _level_db(frame)
        loud = level > max(self.speech_level_db, self.noise_db + _NOISE_MARGIN_DB)
        if not self.speaking:
            return self._while_quiet(frame, level, loud, now_s)
        self._speech.append(frame)
        if loud:
            self._quiet_run, self._last_loud_s = 0, now_s + _FRAME_S
        else:
            self._quiet_run += 1
        assert self._start_s is not None
        too_long = now_s - self._start_s >= _MAX_UTTERANCE_S
        if self._quiet_run >= _frames(self.end_silence_s / _FRAME_S) or too_long:
            return self._end()
        if self._quiet_run == self._pause_frames and self._last_loud_s - self._start_s >= _MIN_SPEECH_S:
            return SpeechPaused(np.concatenate(self._speech), self._start_s, self._last_loud_s)
        return None

    @property
    def _pause_frames(self) -> int:
        return _frames(self.pause_s / _FRAME_S)

    def _while_quiet(self, frame: Samples, level: float, loud: bool, now_s: float) -> SpeechStarted | None:
        self._pre_roll.append(frame)
        while len(self._pre_roll) * _FRAME_S > _PRE_ROLL_S:
            self._pre_roll.popleft()
        self._loud_run = self._loud_run + 1 if loud else 0
        if not loud:  # the floor follows the room slowly, and only while nobody talks
            self.noise_db = 0.95 * self.noise_db + 0.05 * level if self.noise_db > -70.0 else max(level, -70.0)
            return None
        if self._loud_run < self.onset_frames:
            return None
        self._start_s = now_s - (self.onset_frames - 1) * _FRAME_S
        self._last_loud_s = now_s + _FRAME_S
        self._speech = list(self._pre_roll)
        self._pre_roll.clear()
        self._quiet_run = 0
        return SpeechStarted(self._start_s)

    def _end(self) -> SpeechEnded | None:
        start_s, self._start_s = self._start_s, None
        speech, self._speech = self._speech, []
        self._loud_run = 0
        if self._quiet_run > self._pause_frames:  # what a SpeechPaused carried: the same samples
            speech = speech[: len(speech) - (self._quiet_run - self._pause_frames)]
        if start_s is None or self._last_loud_s - start_s < _MIN_SPEECH_S:
            return None
        return SpeechEnded(np.concatenate(speech), start_s, self._last_loud_s)


def _frames(count: float) -> int:
    """Whole frames for at least ``count`` of them (0.45 / 0.02 is 22.499…: 23; 0.2 / 0.02 is 10.000…2: 10)."""
    return math.ceil(count - 1e-6)


def _level_db(frame: Samples) -> float:
    rms = math.sqrt(float(np.mean(np.square(frame, dtype=np.float64)))) if len(frame) else 0.0
    return 20.0 * math.log10(rms) if rms > 1e-7 else -140.0
