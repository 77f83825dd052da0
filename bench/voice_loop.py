"""The voice loop's latency: from the end of the host's speech to the transcript, the first reply text
and the first spoken audio.

Each streamer sentence is read by espeak-ng, played through the file source at the pace of a
live microphone, heard by the packaged Moonshine tiny-en model and answered by the default CPU
model (or the script), whose first sentence espeak-ng speaks. Times are taken from the last loud
frame of the host's speech, so ``transcript`` includes the COSTAR_HEARING_END_SILENCE_S wait
that tells the host has finished; the recognizer runs during that wait, from
COSTAR_HEARING_TRANSCRIBE_AFTER_S of silence on (``transcribe`` is the recognizer alone, each
run counted: a pause the host spoke on from is one more).

    .venv/bin/python bench/voice_loop.py                           # 20 sentences, the default CPU model
    .venv/bin/python bench/voice_loop.py --backend scripted --utterances 36
    .venv/bin/python bench/voice_loop.py --sentences my_lines.tsv --end-silence 0.3
    .venv/bin/python bench/voice_loop.py --end-silence 0.5 --transcribe-after 5   # as before: no early run

The last line is ``RESULT transcript_p50_s=… first_token_p50_s=… first_audio_p50_s=…
first_audio_p95_s=… wer=… transcribe_p50_s=… utterances=… backend=…``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.inputs import require_inputs  # noqa: E402
from bot.app import build_manager, close_manager  # noqa: E402
from engine.backends.scripted import ScriptedBackend  # noqa: E402
from engine.hearing.audio import FileSource  # noqa: E402
from engine.hearing.listener import HostTurn, Listener  # noqa: E402
from engine.hearing.recognizer import MoonshineRecognizer  # noqa: E402
from engine.settings import load_settings  # noqa: E402
from engine.stage.cues import AudioCue  # noqa: E402
from engine.voice.speaker import Voice  # noqa: E402
from engine.voice.synth import EspeakSynthesizer  # noqa: E402
from tests.hearing_speech import SENTENCES, espeak_installed, sentences, speak, wav_bytes, word_error_rate  # noqa: E402

SCRIPTED_REPLY = "Oh, absolutely. That boss never stood a chance against us. Want to go again?"


class TimedRecognizer:
    """The recognizer, timing each transcription (the worker thread calls it)."""

    def __init__(self, inner: MoonshineRecognizer) -> None:
        self.inner, self.name, self.seconds = inner, inner.name, list[float]()

    def transcribe(self, samples: Any) -> str:
        started = time.perf_counter()
        try:
            return self.inner.transcribe(samples)
        finally:
            self.seconds.append(time.perf_counter() - started)


async def one_turn(
    manager: Any, recognizer: TimedRecognizer, settings: Any, text: str
) -> tuple[HostTurn, float | None]:
    audio = wav_bytes(0.3, speak(text), 1.0)
    audio_at: list[float] = []
    # The first sentence of a reply (seq 0): the last reply's later sentences may still be arriving.
    with manager.stage.subscribe(lambda cue: isinstance(cue, AudioCue) and cue.seq == 0) as cues:

        async def first_audio() -> None:
            await cues.get()
            audio_at.append(time.perf_counter())

        waiting = asyncio.create_task(first_audio())
        source = FileSource("utterance.wav", stream=io.BytesIO(audio), realtime=True)
        listener = Listener(source, recognizer, manager, settings.hearing)
        await listener.run()
        with contextlib.suppress(TimeoutError):  # an answer moderation withheld is never spoken
            await asyncio.wait_for(waiting, 30)
    [turn] = listener.turns or [HostTurn("", False, 0.0, 0.0)]
    return turn, audio_at[0] if audio_at else None


async def run(args: argparse.Namespace) -> tuple[list[tuple[str, HostTurn, float | None]], TimedRecognizer]:
    with tempfile.TemporaryDirectory(prefix="costar-bench-") as data_dir:
        settings = load_settings(
            None,
            core={"data_dir": Path(data_dir)},
            backend={"timeout_s": 600.0},
            resilience={"first_chunk_timeout_s": 600.0, "idle_timeout_s": 600.0},
            hearing={
                "enabled": True,
                "answer": "always",
                "end_silence_s": args.end_silence,
                "transcribe_after_s": args.transcribe_after,
                "barge_in": False,
            },
        )
        backend = ScriptedBackend(default=SCRIPTED_REPLY, chunk_delay_s=0.03) if args.backend == "scripted" else None
        manager = await build_manager(settings, backend=backend)
        await manager.backend.start()
        espeak = EspeakSynthesizer()
        voice_task = asyncio.create_task(Voice(manager.stage, lambda persona: espeak).run())
        recognizer = TimedRecognizer(MoonshineRecognizer())
        texts = [sentence.text for sentence in sentences(args.sentences)][: args.utterances]
        results = []
        try:
            for text in texts:
                turn, audio_at = await one_turn(manager, recognizer, settings, text)
                results.append((text, turn, audio_at))
                print(describe(turn, audio_at), flush=True)
                await asyncio.sleep(1.0)  # the rest of the reply is spoken before the host talks again
            return results, recognizer
        finally:
            voice_task.cancel()
            await manager.backend.aclose()
            await close_manager(manager)


def describe(turn: HostTurn, audio_at: float | None) -> str:
    end = turn.speech_ended_at
    moments = [("transcript", turn.transcribed_at), ("text", turn.first_text_at), ("audio", audio_at)]
    return "  ".join(f"{name} {at - end:5.2f} s" for name, at in moments if at) + f"  | {turn.text}"


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=Path, default=SENTENCES, help="kind<TAB>text lines (tests/data/hearing)")
    parser.add_argument("--utterances", type=int, default=20, help="how many sentences (default 20)")
    parser.add_argument("--backend", choices=["default", "scripted"], default="default")
    parser.add_argument("--end-silence", type=float, default=0.45, help="COSTAR_HEARING_END_SILENCE_S")
    parser.add_argument(
        "--transcribe-after", type=float, default=0.2, help="COSTAR_HEARING_TRANSCRIBE_AFTER_S (>= end silence: off)"
    )
    args = parser.parse_args(argv)
    require_inputs(parser, {"--sentences": args.sentences})
    if not espeak_installed():
        print("missing input: espeak-ng is not installed (apt-get install espeak-ng)", file=sys.stderr)
        return 2
    results, recognizer = asyncio.run(run(args))
    turns = [(text, turn, audio_at) for text, turn, audio_at in results if turn.text]
    transcript = [turn.transcribed_at - turn.speech_ended_at for _, turn, _ in turns]
    token = [turn.first_text_at - turn.speech_ended_at for _, turn, _ in turns if turn.first_text_at]
    audio = [audio_at - turn.speech_ended_at for _, turn, audio_at in turns if audio_at]
    wer = word_error_rate([text for text, _, _ in results], [turn.text for _, turn, _ in results])
    print(
        f"RESULT transcript_p50_s={percentile(transcript, 0.5):.2f} first_token_p50_s={percentile(token, 0.5):.2f}"
        f" first_audio_p50_s={percentile(audio, 0.5):.2f} first_audio_p95_s={percentile(audio, 0.95):.2f}"
        f" wer={wer:.3f} transcribe_p50_s={statistics.median(recognizer.seconds or [float('nan')]):.2f}"
        f" utterances={len(results)} backend={args.backend}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
