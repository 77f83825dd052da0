"""What a shorter COSTAR_HEARING_END_SILENCE_S costs: lines cut in two at a pause.

The host's line ends after that much quiet, so the shorter it is, the sooner the transcript, and
the more often a pause inside a sentence (a comma, a breath) ends it early. This counts, for each
end silence, the streamer sentences read by espeak-ng (two voices at two speeds) that come out as
more than one line, and the lines the real recording two_cities.wav (one long sentence read
aloud, 44 s) is cut into. Loudness only: no model, a few seconds.

    .venv/bin/python bench/end_silence.py
    .venv/bin/python bench/end_silence.py --sentences tests/data/hearing/wake_dev_sentences.tsv --silences 0.3 0.45

The last line is ``RESULT cut_sentences_at_<s>=… two_cities_lines_at_<s>=… sentences=…``.
"""

from __future__ import annotations

import argparse
import sys
import wave
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.inputs import require_inputs  # noqa: E402
from engine.hearing.audio import MODEL_RATE, Samples, resample, to_mono_float  # noqa: E402
from engine.hearing.segmenter import Segmenter, SpeechEnded  # noqa: E402
from tests.hearing_speech import SENTENCES, VOICES, espeak_installed, sentences, speak, two_cities_wav  # noqa: E402

FRAME = 320  # 20 ms at 16 kHz, as a microphone delivers


def lines(audio: Samples, end_silence_s: float) -> int:
    """How many lines the segmenter makes of ``audio`` at this end silence."""
    segmenter = Segmenter(end_silence_s=end_silence_s)
    ended = 0
    for start in range(0, len(audio), FRAME):
        ended += sum(isinstance(event, SpeechEnded) for event in segmenter.feed(audio[start : start + FRAME]))
    return ended + (segmenter.flush() is not None)


def recording(path: Path) -> Samples:
    with wave.open(str(path)) as reader:
        pcm = reader.readframes(reader.getnframes())
        return resample(to_mono_float(pcm, reader.getsampwidth(), reader.getnchannels()), reader.getframerate())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=Path, default=SENTENCES, help="kind<TAB>text lines (tests/data/hearing)")
    parser.add_argument("--recording", type=Path, default=None, help="a long reading (default: two_cities.wav)")
    parser.add_argument("--silences", type=float, nargs="+", default=[0.25, 0.3, 0.35, 0.4, 0.45, 0.5])
    args = parser.parse_args()
    require_inputs(parser, {"--sentences": args.sentences, "--recording": args.recording})
    if not espeak_installed():
        print("missing input: espeak-ng is not installed (apt-get install espeak-ng)", file=sys.stderr)
        return 2
    quiet = np.zeros(MODEL_RATE, dtype=np.float32)
    readings = [
        np.concatenate([quiet[: MODEL_RATE * 3 // 10], speak(sentence.text, voice, rate), quiet])
        for voice, rate in VOICES
        for sentence in sentences(args.sentences)
    ]
    reading = recording(args.recording or two_cities_wav())
    result = []
    for end_silence_s in args.silences:
        cut = sum(lines(audio, end_silence_s) > 1 for audio in readings)
        two_cities = lines(reading, end_silence_s)
        print(
            f"end silence {end_silence_s:.2f} s: {cut}/{len(readings)} sentences cut, two_cities.wav in {two_cities} lines"
        )
        result += [f"cut_sentences_at_{end_silence_s:g}={cut}", f"two_cities_lines_at_{end_silence_s:g}={two_cities}"]
    print("RESULT " + " ".join(result) + f" sentences={len(readings)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
