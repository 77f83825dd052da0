"""Barge-in: from the host starting to talk to the character's voice being told to stop.

The character speaks a long line (espeak-ng through the voice, as on stream); while it plays,
the host's speech arrives through the file source at a live microphone's pace. Measured from
the speech onset (the first loud frame, in audio time mapped to the clock) to the
:class:`~engine.stage.cues.AudioStop` on the stage, which the overlay page obeys at once.

    .venv/bin/python bench/barge_in.py                 # 20 trials
    .venv/bin/python bench/barge_in.py --trials 5 --text "Wait, stop."

The last line is ``RESULT barge_in_p50_ms=… barge_in_max_ms=… stopped=…/… trials=…``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.inputs import require_inputs  # noqa: E402
from bot.app import build_manager, close_manager  # noqa: E402
from engine.backends.scripted import ScriptedBackend  # noqa: E402
from engine.events import ChatEvent  # noqa: E402
from engine.hearing.audio import FileSource  # noqa: E402
from engine.hearing.listener import Listener  # noqa: E402
from engine.manager import ConversationManager  # noqa: E402
from engine.settings import load_settings  # noqa: E402
from engine.stage.cues import AudioCue, AudioStop  # noqa: E402
from engine.voice.speaker import Voice  # noqa: E402
from engine.voice.synth import EspeakSynthesizer  # noqa: E402
from tests.hearing_speech import espeak_installed, speak, wav_bytes  # noqa: E402

LONG_LINE = "Let me tell you everything about that boss. " * 6


class NoRecognizer:
    """Barge-in happens before any transcription: the recognizer is not part of this figure."""

    name = "none"

    def transcribe(self, samples: object) -> str:
        return ""


async def trial(manager: ConversationManager, voice: Voice, host_wav: bytes, number: int) -> float | None:
    settings = manager.settings
    with manager.stage.subscribe(lambda cue: isinstance(cue, AudioCue | AudioStop)) as cues:
        heard = await manager.hear(
            ChatEvent("console", "local", "viewer", "viewer", "tell me about the boss", message_id=f"b{number}",
                      addresses_bot=True)
        )  # fmt: skip
        await manager.say(heard, LONG_LINE)
        first = await asyncio.wait_for(cues.get(), 30)  # the voice is talking now
        assert isinstance(first, AudioCue)
        source = FileSource("host.wav", stream=io.BytesIO(host_wav), realtime=True)
        listener = Listener(source, NoRecognizer(), manager, settings.hearing, on_speech_start=voice.hush)
        running = asyncio.create_task(listener.run())
        stopped_at = None
        while stopped_at is None and not running.done():
            try:
                cue = await asyncio.wait_for(cues.get(), 0.05)
            except TimeoutError:
                continue
            if isinstance(cue, AudioStop):
                stopped_at = time.perf_counter()
        await running
    if stopped_at is None or not listener.onsets:
        return None
    return stopped_at - listener.onsets[0]


async def run(args: argparse.Namespace) -> list[float | None]:
    with tempfile.TemporaryDirectory(prefix="costar-bench-") as data_dir:
        settings = load_settings(None, core={"data_dir": Path(data_dir)}, hearing={"enabled": True})
        manager = await build_manager(settings, backend=ScriptedBackend())
        espeak = EspeakSynthesizer()
        voice = Voice(manager.stage, lambda persona: espeak)
        voice_task = asyncio.create_task(voice.run())
        host_wav = args.host_wav.read_bytes() if args.host_wav else wav_bytes(0.4, speak(args.text), 0.6)
        results = []
        try:
            for number in range(args.trials):
                results.append(await trial(manager, voice, host_wav, number))
                print(f"trial {number + 1}: " + (f"{1000 * results[-1]:.0f} ms" if results[-1] else "not stopped"))
                voice.hush()
            return results
        finally:
            voice_task.cancel()
            await close_manager(manager)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--text", default="Okay, stop, stop.", help="what the host says over the character")
    parser.add_argument("--host-wav", type=Path, default=None, help="a recording of the host instead (WAV)")
    args = parser.parse_args(argv)
    require_inputs(parser, {"--host-wav": args.host_wav})
    if not espeak_installed():
        print("missing input: espeak-ng is not installed (apt-get install espeak-ng)", file=sys.stderr)
        return 2
    results = asyncio.run(run(args))
    stopped = [value for value in results if value is not None]
    median = 1000 * statistics.median(stopped) if stopped else float("nan")
    worst = 1000 * max(stopped) if stopped else float("nan")
    print(
        f"RESULT barge_in_p50_ms={median:.0f} barge_in_max_ms={worst:.0f} stopped={len(stopped)}/{len(results)}"
        f" trials={len(results)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
