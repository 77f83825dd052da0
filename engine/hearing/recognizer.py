"""Speech to text behind one small interface: ``transcribe(samples) -> text`` (blocking, 16 kHz mono).

Moonshine (``moonshine-voice``, MIT) is the one engine today; 0.0.55 ships the tiny-en weights in
its wheel, so hearing works offline. Another engine is a class with ``name`` and ``transcribe``
plus a branch in :func:`recognizer_for` (docs/hearing.md shows faster-whisper as an example).

Threads: callers run ``transcribe`` on the listener's one worker thread, never on the event
loop. Inside, Moonshine runs ONNX Runtime with its default intra-op pool (one thread per core);
moonshine-voice 0.0.55 has no option to narrow it, so a transcription competes with the reply
model while it runs (docs/hearing.md has the measured effect).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Protocol

from engine.errors import HearingUnavailable
from engine.hearing.audio import Samples

__all__ = ["MoonshineRecognizer", "Recognizer", "packaged_model", "recognizer_for"]

log = logging.getLogger(__name__)


class Recognizer(Protocol):
    name: str

    def transcribe(self, samples: Samples) -> str:
        """What was said in ``samples`` (16 kHz mono float32), "" for nothing; blocking."""
        ...


def packaged_model() -> Path:
    """The tiny-en model inside moonshine-voice 0.0.55's wheel."""
    try:
        import moonshine_voice
    except ImportError as exc:
        raise HearingUnavailable("moonshine-voice is not installed: pip install 'costar[hearing]'") from exc
    folder = Path(moonshine_voice.__file__).parent / "assets" / "tiny-en"
    if not (folder / "encoder_model.ort").is_file():
        raise HearingUnavailable(
            f"moonshine-voice {getattr(moonshine_voice, '__version__', '')} has no packaged model in {folder}:"
            " install moonshine-voice==0.0.55 or set COSTAR_HEARING_MODEL_PATH"
        )
    return folder


class MoonshineRecognizer:
    """A Moonshine model folder (encoder_model.ort, decoder_model_merged.ort, tokenizer.bin)."""

    name = "moonshine"

    def __init__(self, model_path: Path | None = None, arch: str = "tiny") -> None:
        try:
            from moonshine_voice import Transcriber, string_to_model_arch
        except ImportError as exc:
            raise HearingUnavailable("moonshine-voice is not installed: pip install 'costar[hearing]'") from exc
        self.model_path = model_path or packaged_model()
        if not self.model_path.is_dir():
            raise HearingUnavailable(f"COSTAR_HEARING_MODEL_PATH: {self.model_path} is not a folder")
        try:
            self._transcriber: Any = Transcriber(str(self.model_path), string_to_model_arch(arch))
        except Exception as exc:  # MoonshineError, ValueError for an unknown arch
            raise HearingUnavailable(f"cannot load the Moonshine model in {self.model_path} ({arch}): {exc}") from exc
        self._lock = threading.Lock()  # one transcription at a time per loaded model

    def transcribe(self, samples: Samples) -> str:
        with self._lock:
            try:
                transcript = self._transcriber.transcribe_without_streaming(samples.tolist(), 16000)
            except Exception as exc:
                raise HearingUnavailable(f"Moonshine failed: {exc}") from exc
        lines = [line for line in transcript.lines if line.text.strip()]
        heard = [line for line, following in zip(lines, [*lines[1:], None], strict=True) if not _ghost(line, following)]
        return " ".join(line.text.strip() for line in heard)

    def close(self) -> None:
        self._transcriber.close()


# moonshine-voice 0.0.55 keeps its voice-activity state from one transcribe_without_streaming call
# to the next: after some calls the next transcript starts with a phantom line ("You", 0.06-0.26 s
# long in 25 calls logged) that runs into the real first line ("You" + "I think Pip knows…").
# Transcribing a line early and again (COSTAR_HEARING_TRANSCRIBE_AFTER_S) makes more calls, so more
# phantoms. A real line that runs into the next is long ("Okay, babe, tell.", 1.4 s).
_GHOST_S = 0.4  # longer than any phantom seen, shorter than a word said on its own ("Babe." 0.7 s)
_TOUCHING_S = 0.01


def _ghost(line: Any, following: Any | None) -> bool:
    """A line too short to be speech that runs into the line after it."""
    return (
        following is not None
        and line.duration < _GHOST_S
        and line.start_time + line.duration >= following.start_time - _TOUCHING_S
    )


def recognizer_for(model_path: Path | None, arch: str) -> Recognizer:
    """The configured recognizer (loads the model: about a second; call it off the event loop)."""
    return MoonshineRecognizer(model_path, arch)
