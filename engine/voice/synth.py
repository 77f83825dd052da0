"""Speech engines behind one small interface: ``synthesize(text) -> WAV bytes`` (blocking).

Callers run ``synthesize`` in a worker thread; it never touches the event loop. espeak-ng is a
Debian package with its voices built in (no download); piper (``piper-tts``, GPL-3.0-or-later) is
an optional extra that needs a voice file the streamer points to.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import threading
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from engine.errors import VoiceUnavailable
from personas.on_stream import VoiceSection

__all__ = ["EspeakSynthesizer", "PiperSynthesizer", "Synthesizer", "WavInfo", "synthesizer_for", "wav_info"]

_TIMEOUT_S = 30.0  # one sentence takes espeak-ng tens of milliseconds; this only catches a hang


class Synthesizer(Protocol):
    name: str

    def synthesize(self, text: str) -> bytes:
        """A complete WAV file (16-bit mono PCM) speaking ``text``; blocking."""
        ...


@dataclass(frozen=True, slots=True)
class WavInfo:
    sample_rate: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def wav_info(data: bytes) -> WavInfo:
    with wave.open(io.BytesIO(data)) as reader:
        return WavInfo(reader.getframerate(), reader.getnframes())


def _pcm_wav(pcm: bytes, sample_rate: int, channels: int = 1, sample_width: int = 2) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(sample_width)
        writer.setframerate(sample_rate)
        writer.writeframes(pcm)
    return buffer.getvalue()


def _repair_streamed_wav(data: bytes) -> bytes:
    """espeak-ng writing to a pipe cannot seek back, so its RIFF and data sizes are placeholders."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise VoiceUnavailable("espeak-ng did not write a WAV file")
    position, fmt = 12, None
    while position + 8 <= len(data):
        chunk, size = data[position : position + 4], int.from_bytes(data[position + 4 : position + 8], "little")
        body = position + 8
        if chunk == b"fmt ":
            fmt = data[body : body + 16]
        elif chunk == b"data" and fmt is not None:
            channels = int.from_bytes(fmt[2:4], "little")
            rate = int.from_bytes(fmt[4:8], "little")
            width = int.from_bytes(fmt[14:16], "little") // 8
            pcm = data[body:]
            return _pcm_wav(pcm[: len(pcm) - len(pcm) % (channels * width)], rate, channels, width)
        position = body + size + (size & 1)
    raise VoiceUnavailable("espeak-ng wrote a WAV file without audio")


class EspeakSynthesizer:
    name = "espeak-ng"

    def __init__(self, voice: str = "en-us", rate: int = 170, pitch: int = 50, binary: str = "espeak-ng") -> None:
        self.voice, self.rate, self.pitch = voice, rate, pitch
        found = shutil.which(binary)
        if found is None:
            raise VoiceUnavailable(
                f"{binary} is not installed: `apt-get install espeak-ng` (Debian/Ubuntu), or set COSTAR_VOICE_ESPEAK_BINARY"
            )
        self.binary = found

    def synthesize(self, text: str) -> bytes:
        # The text goes in on stdin, never as an argument: a viewer-influenced '-w file' stays text.
        command = [self.binary, "--stdout", "-v", self.voice, "-s", str(self.rate), "-p", str(self.pitch)]
        try:
            done = subprocess.run(
                command, input=text.encode("utf-8"), capture_output=True, timeout=_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise VoiceUnavailable(f"espeak-ng failed: {exc}") from exc
        if done.returncode != 0:
            message = done.stderr.decode("utf-8", "replace").strip() or f"exit status {done.returncode}"
            raise VoiceUnavailable(f"espeak-ng failed: {message}")
        return _repair_streamed_wav(done.stdout)


class PiperSynthesizer:
    """A piper voice (``model.onnx`` with ``model.onnx.json`` beside it), loaded on first use."""

    name = "piper"

    def __init__(self, model: Path) -> None:
        if not model.is_file():
            raise VoiceUnavailable(f"piper voice file {model} not found")
        self.model = model
        self._voice: Any = None
        self._lock = threading.Lock()  # one synthesis at a time per loaded voice

    def _loaded(self) -> Any:
        if self._voice is None:
            try:
                from piper import PiperVoice  # GPL-3.0: an optional extra, imported only here
            except ImportError as exc:
                raise VoiceUnavailable("piper is not installed: pip install 'costar[piper]'") from exc
            self._voice = PiperVoice.load(str(self.model))
        return self._voice

    def synthesize(self, text: str) -> bytes:
        with self._lock:
            voice = self._loaded()
            buffer = io.BytesIO()
            try:
                with wave.open(buffer, "wb") as writer:
                    voice.synthesize_wav(text, writer)
            except Exception as exc:  # onnxruntime and piper raise their own types
                raise VoiceUnavailable(f"piper failed: {exc}") from exc
            return buffer.getvalue()


def synthesizer_for(section: VoiceSection, *, card_dir: Path | None, espeak_binary: str = "espeak-ng") -> Synthesizer:
    if section.engine == "piper":
        if not section.model:
            raise VoiceUnavailable("voice: engine piper needs model: (the .onnx voice file)")
        model = Path(section.model).expanduser()
        if not model.is_absolute() and card_dir is not None:
            model = card_dir / model
        return PiperSynthesizer(model)
    return EspeakSynthesizer(section.voice, section.rate, section.pitch, binary=espeak_binary)
