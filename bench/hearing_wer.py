"""Recognition figures for hearing: word error rate and false wakes, with the packaged Moonshine tiny-en.

Transcribes moonshine-voice's real recording (two_cities.wav) and the streamer sentences in
tests/data/hearing/streamer_sentences.tsv read by espeak-ng in two voices at two speeds, then
counts how often the character's name is heard in sentences that do not name it (false wakes)
and missed in those that do.

    .venv/bin/python bench/hearing_wer.py                     # everything (a few minutes on 2 cores)
    .venv/bin/python bench/hearing_wer.py --voices 1 --name Pip

The last line is ``RESULT two_cities_wer=… espeak_wer=… false_wakes=… missed_wakes=… sentences=…``.
"""

from __future__ import annotations

import argparse
import sys
import time
import wave
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.inputs import require_inputs  # noqa: E402
from engine.hearing.audio import Samples, resample, to_mono_float  # noqa: E402
from engine.hearing.recognizer import MoonshineRecognizer  # noqa: E402
from engine.hearing.wake import names_heard  # noqa: E402
from tests.hearing_speech import (  # noqa: E402
    SENTENCES,
    TWO_CITIES_TEXT,
    VOICES,
    espeak_installed,
    sentences,
    speak,
    two_cities_wav,
    word_error_rate,
)


def _recording(path: Path) -> tuple[Samples, float]:
    with wave.open(str(path)) as reader:
        samples = to_mono_float(reader.readframes(reader.getnframes()), reader.getsampwidth(), reader.getnchannels())
        return resample(samples, reader.getframerate()), reader.getnframes() / reader.getframerate()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--recording", type=Path, default=None, help="a WAV of TWO_CITIES_TEXT (default: the packaged one)"
    )
    parser.add_argument("--sentences", type=Path, default=SENTENCES)
    parser.add_argument("--voices", type=int, default=len(VOICES), help="how many of the voice/speed pairs to use")
    parser.add_argument("--name", default="Pip", help="the character's name, for wakes")
    args = parser.parse_args()
    require_inputs(parser, {"--recording": args.recording, "--sentences": args.sentences})
    recording = args.recording or two_cities_wav()
    if not espeak_installed():
        print("espeak-ng is not installed (apt-get install espeak-ng)", file=sys.stderr)
        return 2
    recognizer = MoonshineRecognizer()
    samples, seconds = _recording(recording)
    started = time.perf_counter()
    heard = recognizer.transcribe(samples)
    print(f"two_cities.wav ({seconds:.1f} s) in {time.perf_counter() - started:.1f} s: {heard}")
    two_cities_wer = word_error_rate([TWO_CITIES_TEXT], [heard])
    references, hypotheses, false_wakes, missed, others, named = [], [], 0, 0, 0, 0
    for voice, rate in VOICES[: args.voices]:
        for sentence in sentences(args.sentences):
            text = recognizer.transcribe(speak(sentence.text, voice, rate))
            references.append(sentence.text)
            hypotheses.append(text)
            woke = names_heard(text, [args.name])
            if sentence.names_pip:
                named += 1
                missed += not woke
            else:
                others += 1
                false_wakes += woke
            print(f"{voice}@{rate} {'P' if sentence.names_pip else '-'}{'W' if woke else ' '} {text}")
    espeak_wer = word_error_rate(references, hypotheses)
    print(
        f"RESULT two_cities_wer={two_cities_wer:.3f} espeak_wer={espeak_wer:.3f} false_wakes={false_wakes}/{others}"
        f" missed_wakes={missed}/{named} sentences={len(references)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
