"""Audio in, behind one interface: an async iterator of mono float chunks at a known rate.

A source reads in a worker thread (a file) or a PortAudio callback thread (``microphone``) and
never blocks the event loop. Samples are float32 in [-1, 1], one channel: stereo is averaged.
"""

from __future__ import annotations

import asyncio
import io
import sys
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np
import numpy.typing as npt

from engine.errors import HearingUnavailable

__all__ = ["MODEL_RATE", "AudioChunk", "AudioSource", "FileSource", "Samples", "resample", "to_mono_float"]

Samples = npt.NDArray[np.float32]
# What every recognizer here takes; other rates are resampled on the way in.
MODEL_RATE = 16000
# Below this, speech has lost the consonants that tell words apart: refused, not guessed at.
_LOWEST_RATE = 8000
_CHUNK_S = 0.02  # 20 ms: the segmenter's frame, so speech onset is seen within a frame or two


@dataclass(frozen=True, slots=True)
class AudioChunk:
    samples: Samples
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


class AudioSource(Protocol):
    """Where the host's voice comes from; ``describe`` is the one line start-up logs."""

    name: str

    def describe(self) -> str: ...

    def chunks(self) -> AsyncIterator[AudioChunk]:
        """Chunks until the audio ends (a file) or forever (a device); HearingUnavailable when it fails."""
        ...

    def close(self) -> None: ...


def to_mono_float(pcm: bytes, sample_width: int, channels: int) -> Samples:
    """Little-endian integer PCM → float32 mono in [-1, 1]."""
    if sample_width == 2:
        ints = np.frombuffer(pcm[: len(pcm) - len(pcm) % (2 * channels)], dtype="<i2")
        samples = ints.astype(np.float32) / 32768.0
    elif sample_width == 4:
        ints = np.frombuffer(pcm[: len(pcm) - len(pcm) % (4 * channels)], dtype="<i4")
        samples = ints.astype(np.float32) / 2147483648.0
    elif sample_width == 1:  # 8-bit WAV is unsigned
        samples = (np.frombuffer(pcm, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
        samples = samples[: len(samples) - len(samples) % channels]
    else:
        raise HearingUnavailable(f"{sample_width * 8}-bit audio is not supported; use 16-bit PCM")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return samples


def resample(samples: Samples, rate: int, target: int = MODEL_RATE) -> Samples:
    """Linear interpolation to ``target``: enough for speech recognition, and cheap."""
    if rate < _LOWEST_RATE:
        raise HearingUnavailable(
            f"audio at {rate} Hz is too coarse for speech recognition; use at least {_LOWEST_RATE} Hz (16000 is best)"
        )
    if rate == target or len(samples) == 0:
        return samples
    count = round(len(samples) * target / rate)
    positions = np.arange(count, dtype=np.float64) * (rate / target)
    return np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)


class FileSource:
    """A WAV file, or raw 16-bit mono PCM from a file or a pipe (``-`` is stdin), for tests and replay.

    ``realtime`` paces the chunks as a microphone would deliver them (benchmarks, barge-in);
    otherwise they come as fast as they are read.
    """

    def __init__(
        self, path: Path | str, *, sample_rate: int = MODEL_RATE, realtime: bool = False, stream: BinaryIO | None = None
    ) -> None:
        self.name = str(path)
        self.path = None if str(path) == "-" else Path(path)
        self.raw_rate = sample_rate
        self.realtime = realtime
        self._stream = stream
        self._closed = False

    def describe(self) -> str:
        return f"audio from {'standard input' if self.path is None else self.path} (a file: replay, not live)"

    def _open(self) -> BinaryIO:
        if self._stream is not None:
            return self._stream
        if self.path is None:
            return sys.stdin.buffer
        try:
            return self.path.open("rb")
        except OSError as exc:
            raise HearingUnavailable(f"cannot read audio file {self.path}: {exc.strerror or exc}") from exc

    async def chunks(self) -> AsyncIterator[AudioChunk]:
        stream = await asyncio.to_thread(self._open)
        try:
            head = await asyncio.to_thread(stream.read, 12)
            if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
                rest = await asyncio.to_thread(stream.read)  # WAV files here are short recordings
                async for chunk in self._wav_chunks(head + rest):
                    yield chunk
            else:
                async for chunk in self._raw_chunks(stream, head):
                    yield chunk
        finally:
            if stream is not self._stream and stream is not sys.stdin.buffer:
                stream.close()

    async def _wav_chunks(self, data: bytes) -> AsyncIterator[AudioChunk]:
        try:
            with wave.open(io.BytesIO(data)) as reader:
                rate, width, channels = reader.getframerate(), reader.getsampwidth(), reader.getnchannels()
                pcm = reader.readframes(reader.getnframes())
        except (wave.Error, EOFError) as exc:
            raise HearingUnavailable(f"{self.name} is not a PCM WAV file: {exc}") from exc
        samples = to_mono_float(pcm, width, channels)
        step = max(1, int(rate * _CHUNK_S))
        for start in range(0, len(samples), step):
            if self._closed:
                return
            chunk = AudioChunk(samples[start : start + step], rate)
            if self.realtime:
                await asyncio.sleep(chunk.duration_s)
            yield chunk

    async def _raw_chunks(self, stream: BinaryIO, head: bytes) -> AsyncIterator[AudioChunk]:
        frame_bytes = 2 * max(1, int(self.raw_rate * _CHUNK_S))
        pending = head
        while not self._closed:
            data = await asyncio.to_thread(stream.read, frame_bytes)
            pending += data
            usable = len(pending) - len(pending) % 2
            if usable:
                yield AudioChunk(to_mono_float(pending[:usable], 2, 1), self.raw_rate)
                pending = pending[usable:]
            if not data:
                return

    def close(self) -> None:
        self._closed = True
