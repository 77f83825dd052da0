"""Speech for the hearing tests and benchmarks: the streamer sentences, espeak-ng audio, word error rate.

Audio is made in memory with espeak-ng (Debian) and handed to the file source as WAV bytes.
"""

from __future__ import annotations

import io
import re
import shutil
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.hearing.audio import MODEL_RATE, Samples, resample, to_mono_float
from engine.voice.synth import EspeakSynthesizer

__all__ = [
    "SENTENCES",
    "TWO_CITIES_TEXT",
    "VOICES",
    "Sentence",
    "espeak_installed",
    "normalise",
    "sentences",
    "speak",
    "two_cities_wav",
    "wav_bytes",
    "word_error_rate",
]

SENTENCES = Path(__file__).parent / "data" / "hearing" / "streamer_sentences.tsv"
# What the reader of moonshine-voice's two_cities.wav says (A Tale of Two Cities, opening; public domain).
TWO_CITIES_TEXT = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
    "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, "
    "it was the season of Darkness, it was the spring of hope, it was the winter of despair, we had "
    "everything before us, we had nothing before us, we were all going direct to Heaven, we were all going "
    "direct the other way, in short, the period was so far like the present period, that some of its "
    "noisiest authorities insisted on its being received, for good or for evil, in the superlative degree "
    "of comparison only"
)
# Two voices at two speeds (words a minute), as the issue asks.
VOICES = (("en-us", 150), ("en-us", 200), ("en-gb", 150), ("en-gb", 200))


@dataclass(frozen=True, slots=True)
class Sentence:
    names_pip: bool
    text: str


def sentences(path: Path = SENTENCES) -> list[Sentence]:
    """The ``kind<TAB>text`` lines of ``path``; comment lines start with #."""
    rows = [line.split("\t", 1) for line in path.read_text(encoding="utf-8").splitlines()]
    return [Sentence(kind == "pip", text) for kind, text in (row for row in rows if len(row) == 2) if kind != "# kind"]


def espeak_installed() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(text: str, voice: str = "en-us", rate: int = 170) -> Samples:
    """``text`` read by espeak-ng, as 16 kHz mono samples."""
    wav = EspeakSynthesizer(voice, rate).synthesize(text)
    with wave.open(io.BytesIO(wav)) as reader:
        samples = to_mono_float(reader.readframes(reader.getnframes()), reader.getsampwidth(), reader.getnchannels())
        return resample(samples, reader.getframerate())


def wav_bytes(*parts: Samples | float, rate: int = MODEL_RATE) -> bytes:
    """A 16-bit WAV of samples and pauses (a float is that many seconds of silence)."""
    pieces = [np.zeros(int(part * MODEL_RATE), dtype=np.float32) if isinstance(part, float) else part for part in parts]
    samples = resample(np.concatenate(pieces), MODEL_RATE, rate) if rate != MODEL_RATE else np.concatenate(pieces)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def two_cities_wav() -> Path:
    import moonshine_voice

    return Path(moonshine_voice.__file__).parent / "assets" / "two_cities.wav"


def normalise(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """WER over a whole set (jiwer), after lower-casing and dropping punctuation."""
    import jiwer

    return float(jiwer.wer([normalise(text) for text in references], [normalise(text) or "" for text in hypotheses]))
