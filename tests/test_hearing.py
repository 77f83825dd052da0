"""Hearing the host: audio sources, speech segments, the name by its sound, recognition and the whole loop.

The recognizer is the real Moonshine tiny-en model packaged with moonshine-voice; the host's
voice is espeak-ng (Debian), made in memory. The reply model is the script.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import time
import types
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from bot.app import build_manager, close_manager
from bot.hearing import start_hearing
from bot.overlay.server import OverlayServer, cue_filter, overlay_token
from engine.backends.scripted import ScriptedBackend
from engine.errors import HearingUnavailable, SettingsError
from engine.events import Role
from engine.hearing.audio import MODEL_RATE, FileSource, resample
from engine.hearing.listener import HOST_ID, Listener
from engine.hearing.microphone import InputDevice, MicrophoneSource, pick_device
from engine.hearing.recognizer import MoonshineRecognizer, Recognizer
from engine.hearing.segmenter import Segmenter, SpeechEnded, SpeechPaused, SpeechStarted
from engine.hearing.wake import names_heard
from engine.manager import ConversationManager
from engine.settings import HearingSettings, Settings, load_settings
from engine.stage.cues import AudioCue, AudioStop, Cue, HostCaptionCue, NoticeCue
from engine.stage.cuts import CUT_MARK, ReplyCuts, cut_text
from engine.voice.speaker import Voice
from engine.voice.synth import EspeakSynthesizer
from tests.headless_chromium import chromium_binary, launch_chromium
from tests.hearing_speech import (
    TWO_CITIES_TEXT,
    espeak_installed,
    normalise,
    sentences,
    speak,
    two_cities_wav,
    wav_bytes,
    word_error_rate,
)
from tests.on_stage import answer

pytestmark = pytest.mark.timeout(300)

needs_espeak = pytest.mark.skipif(
    not espeak_installed(),
    reason="Debian's espeak-ng is not installed (make setup installs it with apt-get when run as root)",
)


def tone(seconds: float, level_db: float, hz: float = 220.0) -> np.ndarray:
    """A vowel-like tone at ``level_db`` dBFS (RMS), 16 kHz."""
    t = np.arange(int(seconds * MODEL_RATE)) / MODEL_RATE
    return (np.sin(2 * np.pi * hz * t) * np.sqrt(2) * 10 ** (level_db / 20)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * MODEL_RATE), dtype=np.float32)


async def read_all(source: FileSource) -> list[Any]:
    return [chunk async for chunk in source.chunks()]


# -- settings ------------------------------------------------------------------------------------


def test_hearing_is_off_by_default_and_answers_only_when_addressed() -> None:
    hearing = load_settings(None).hearing
    assert hearing.enabled is False
    assert hearing.answer == "addressed"
    assert hearing.debug_audio_dir is None, "audio never touches disk unless asked"


def test_a_hearing_channel_without_its_platform_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match="COSTAR_HEARING_CHANNEL"):
        load_settings(None, hearing={"channel": "yourlogin"})


# -- the name, by its sound ----------------------------------------------------------------------


def test_the_name_is_heard_by_its_sound_when_the_recognizer_misspells_it() -> None:
    assert names_heard("Hey, Bib. What do you think about the mass fight?", ["Pip"])
    assert names_heard("okay pipp tell chat", ["Pip"])
    assert names_heard("what's pip's opinion", ["Pip"])
    assert names_heard("hello sparkel", ["Sparkle"]), "a longer name may be off by one sound"


def test_words_that_only_look_alike_do_not_wake_a_short_name() -> None:
    for text in ["I am going to pop this potion", "just a bit more", "the pit of doom", "we nip it in the bud"]:
        assert not names_heard(text, ["Pip"]), text


def test_a_called_name_may_be_one_sound_off_but_never_shorter_nor_another_ending() -> None:
    for text in ["Rib, remind me to drink water", "Hey, babe, what do you think?", "Dip, do you like it?"]:
        assert names_heard(text, ["Pip"]), text
    for text in ["I need to grab a drink, be right back.", "We lost the team in one bit."]:
        assert not names_heard(text, ["Pip"]), text


def test_a_sound_alike_that_opens_ordinary_talk_does_not_wake_a_short_name() -> None:
    # What Moonshine heard for lines of wake_dev_sentences.tsv that do not name Pip.
    for text in [
        "Sip of water and then we go again.",
        "Keep it down, the neighbors are asleep.",
        "Tip on the knee, same often.",
        "Dip into the cave and grab the root.",
        "Deep gaming right there.",
        "Nice tip, thank you.",
    ]:
        assert not names_heard(text, ["Pip"]), text


def test_a_called_name_one_sound_off_wakes_alone_after_a_greeting_or_before_a_request() -> None:
    # What Moonshine heard for lines that call Pip (streamer_sentences.tsv, wake_dev_sentences.tsv).
    for text in [
        "Rib reminds me to drink some water in 10 minutes.",
        "Fib can you read the last message in chat for me",
        "Hey, babe, are you awake over there?",
        "Hey babe, are you wake up in there?",
        "So babe did you like that ending?",
        "What do you reckon? Babe?",
        "Good job on that call, babe.",
    ]:
        assert names_heard(text, ["Pip"]), text


def test_no_streamer_sentence_that_does_not_name_the_character_wakes_it() -> None:
    others = [sentence.text for sentence in sentences() if not sentence.names_pip]
    assert len(others) >= 18
    assert [text for text in others if names_heard(text, ["Pip"])] == []


# -- where speech starts and ends ---------------------------------------------------------------


def test_speech_onset_is_seen_within_sixty_ms_and_the_line_ends_after_the_silence() -> None:
    segmenter = Segmenter(speech_level_db=-40, end_silence_s=0.5)
    audio = np.concatenate([silence(0.5), tone(1.0, -20), silence(1.0)])
    seen: list[tuple[float, SpeechStarted | SpeechPaused | SpeechEnded]] = []
    for start in range(0, len(audio), 320):  # 20 ms at a time, as a microphone delivers
        for event in segmenter.feed(audio[start : start + 320]):
            seen.append(((start + 320) / MODEL_RATE, event))
    (started_seen_at, started), (paused_seen_at, paused), (ended_seen_at, ended) = seen
    assert isinstance(started, SpeechStarted) and isinstance(ended, SpeechEnded)
    assert started.at_s == pytest.approx(0.5, abs=0.021)
    assert started_seen_at - 0.5 <= 0.061, "barge-in needs the onset within a few frames"
    assert isinstance(paused, SpeechPaused) and paused_seen_at == pytest.approx(1.7, abs=0.041)
    assert ended.end_s == pytest.approx(1.5, abs=0.021)
    assert ended_seen_at == pytest.approx(2.0, abs=0.041)
    assert len(ended.samples) >= MODEL_RATE, "the whole line, pre-roll included"


def test_a_pause_carries_the_line_as_it_ends_if_the_host_stays_quiet() -> None:
    segmenter = Segmenter(speech_level_db=-40, end_silence_s=0.45, pause_s=0.2)
    quiet_after = segmenter.feed(np.concatenate([silence(0.3), tone(1.0, -20), silence(1.0)]))
    _, paused, ended = quiet_after
    assert isinstance(paused, SpeechPaused) and isinstance(ended, SpeechEnded)
    assert paused.ends(ended) and np.array_equal(paused.samples, ended.samples), "the early transcript is the line"
    spoke_on = segmenter.feed(np.concatenate([tone(1.0, -20), silence(0.3), tone(0.5, -20), silence(1.0)]))
    _, first_pause, second_pause, ended = spoke_on
    assert isinstance(first_pause, SpeechPaused) and isinstance(second_pause, SpeechPaused)
    assert isinstance(ended, SpeechEnded) and not first_pause.ends(ended) and second_pause.ends(ended)


def test_by_default_the_line_ends_and_is_transcribed_early_enough_for_a_half_second_transcript() -> None:
    defaults = HearingSettings()
    segmenter = Segmenter(defaults.speech_level_db, defaults.end_silence_s, defaults.transcribe_after_s)
    seen: list[tuple[float, SpeechStarted | SpeechPaused | SpeechEnded]] = []
    audio = np.concatenate([silence(0.3), tone(1.0, -20), silence(1.0)])
    for start in range(0, len(audio), 320):
        seen += [((start + 320) / MODEL_RATE, event) for event in segmenter.feed(audio[start : start + 320])]
    [(paused_at, _), (ended_at, ended)] = [(at, event) for at, event in seen if not isinstance(event, SpeechStarted)]
    assert isinstance(ended, SpeechEnded) and ended.end_s == pytest.approx(1.3, abs=0.021)
    # bench/voice_loop.py: the recognizer takes about 0.2 s, so it must start by 0.3 s to be done by 0.5 s.
    assert ended_at - ended.end_s <= 0.46 and paused_at - ended.end_s <= 0.21


@needs_espeak
def test_at_the_default_end_silence_no_slow_streamer_sentence_is_cut_in_two() -> None:
    """The price of a short end silence is cutting the host off at a comma: none of the sentences at 150 words a minute."""
    end_silence_s = HearingSettings().end_silence_s
    cut = []
    for voice in ("en-us", "en-gb"):
        for sentence in sentences():
            segmenter = Segmenter(end_silence_s=end_silence_s)
            events = segmenter.feed(np.concatenate([silence(0.3), speak(sentence.text, voice, 150), silence(1.0)]))
            if sum(isinstance(event, SpeechEnded) for event in events) != 1:
                cut.append((voice, sentence.text))
    assert cut == []


def test_room_noise_and_a_click_are_not_speech() -> None:
    segmenter = Segmenter(speech_level_db=-40, end_silence_s=0.5)
    hum = tone(2.0, -50, hz=50)
    click = tone(0.04, -10)
    assert segmenter.feed(np.concatenate([hum, click, hum])) == []
    assert segmenter.flush() is None


# -- audio sources -------------------------------------------------------------------------------


async def test_a_stereo_48k_wav_arrives_as_mono_and_is_resampled_for_the_model(tmp_path: Path) -> None:
    stereo = tmp_path / "stereo.wav"
    left = tone(0.5, -20)
    with wave.open(str(stereo), "wb") as writer:
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(48000)
        pcm48 = resample(left, MODEL_RATE, 48000)
        both = np.stack([pcm48, pcm48], axis=1).reshape(-1)
        writer.writeframes((both * 32767).astype("<i2").tobytes())
    chunks = await read_all(FileSource(stereo))
    assert {chunk.sample_rate for chunk in chunks} == {48000}
    mono = np.concatenate([chunk.samples for chunk in chunks])
    assert len(mono) == len(pcm48)
    assert len(resample(mono, 48000)) == pytest.approx(len(left), abs=2)


async def test_raw_pcm_from_a_pipe_is_read_at_the_configured_rate() -> None:
    pcm = (tone(0.3, -20) * 32767).astype("<i2").tobytes()
    chunks = await read_all(FileSource("-", sample_rate=16000, stream=io.BytesIO(pcm)))
    assert sum(len(chunk.samples) for chunk in chunks) == len(pcm) // 2


async def test_a_missing_audio_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(HearingUnavailable, match=r"cannot read audio file .*nowhere\.wav"):
        await read_all(FileSource(tmp_path / "nowhere.wav"))


def test_a_sample_rate_the_model_cannot_use_is_refused_with_the_fix() -> None:
    with pytest.raises(HearingUnavailable, match="at least 8000 Hz"):
        resample(tone(0.1, -20), 4000)


# -- devices -------------------------------------------------------------------------------------


def test_no_microphone_is_one_clear_error() -> None:
    with pytest.raises(HearingUnavailable, match="no microphone"):
        pick_device([], None)


def test_a_device_is_chosen_by_part_of_its_name_and_a_wrong_name_lists_the_others() -> None:
    devices = [
        InputDevice(0, "Built-in Mic", 1, 48000, True),
        InputDevice(3, "CABLE Output (VB-Audio)", 2, 48000, False),
    ]
    assert pick_device(devices, "cable").index == 3
    assert pick_device(devices, None).index == 0
    with pytest.raises(HearingUnavailable, match="'Built-in Mic', 'CABLE Output"):
        pick_device(devices, "Discord")


async def test_hearing_that_cannot_start_says_why_in_one_line_and_the_bot_goes_on(
    manager: ConversationManager, caplog: pytest.LogCaptureFixture
) -> None:
    settings = HearingSettings(enabled=True, device="no-such-device-anywhere")
    with caplog.at_level(logging.ERROR):
        hearing = await start_hearing(settings, manager, voice=None)
    assert hearing is None
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.getMessage().startswith("Hearing is off:")
    assert "\n" not in record.getMessage()


class _VanishingDevice:
    """A fake ``sounddevice`` whose only microphone delivers a few blocks and then is unplugged."""

    default = types.SimpleNamespace(device=(0, 0))

    def __init__(self) -> None:
        self.InputStream = self._stream

    @staticmethod
    def query_devices() -> list[dict[str, Any]]:
        return [{"name": "USB Mic", "max_input_channels": 1, "default_samplerate": 16000.0}]

    def _stream(self, *, callback: Callable[..., None], finished_callback: Callable[[], None], **_: Any) -> Any:
        import threading

        def deliver() -> None:
            for _ in range(5):
                callback(np.zeros((320, 1), dtype=np.float32), 320, None, None)
            finished_callback()

        return types.SimpleNamespace(start=lambda: threading.Thread(target=deliver).start(), stop=lambda: None,
                                     close=lambda: None)  # fmt: skip


async def test_a_device_that_disappears_mid_stream_ends_hearing_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", _VanishingDevice())
    source = MicrophoneSource()
    assert "Listening on 0: USB Mic" in source.describe()
    received = 0
    with pytest.raises(HearingUnavailable, match="'USB Mic' stopped"):
        async for _chunk in source.chunks():
            received += 1
    assert received == 5


# -- recognition ---------------------------------------------------------------------------------

# Measured on the packaged tiny-en model (bench/hearing_wer.py, docs/hearing.md); the test allows +5 points.
TWO_CITIES_WER = 0.06


@pytest.fixture(scope="module")
def recognizer() -> MoonshineRecognizer:
    return MoonshineRecognizer()


def test_word_error_rate_on_the_real_recording_stays_within_five_points(recognizer: MoonshineRecognizer) -> None:
    with wave.open(str(two_cities_wav())) as reader:
        from engine.hearing.audio import to_mono_float

        pcm = reader.readframes(reader.getnframes())
        samples = resample(to_mono_float(pcm, reader.getsampwidth(), reader.getnchannels()), reader.getframerate())
    heard = recognizer.transcribe(samples)
    assert word_error_rate([TWO_CITIES_TEXT], [heard]) <= TWO_CITIES_WER + 0.05, heard


@needs_espeak
def test_a_line_is_heard_the_same_whatever_was_transcribed_before_it() -> None:
    # moonshine-voice 0.0.55 carries state between calls: after this cut-off line, the next one
    # came back as "You I think …" (a phantom line, 0.06 s long, overlapping the real one).
    # The state is the library's, shared by every model in the process: after other tests the words
    # themselves may differ ("they've known" for "people knows"), so the test holds the first word.
    recognizer = MoonshineRecognizer()
    quiet = silence(0.3)
    line = np.concatenate([quiet, speak("I think Pip knows the answer to this one."), silence(0.2)])
    cut_off = np.concatenate([quiet, speak("What do you reckon, Pip, is this sword any good?")])[:30000]
    first = recognizer.transcribe(line)
    recognizer.transcribe(cut_off)
    after = recognizer.transcribe(line)
    assert normalise(after).split()[0] == normalise(first).split()[0], (first, after)


# -- the whole loop ------------------------------------------------------------------------------


@pytest.fixture
async def hearing(
    make_settings: Callable[..., Settings], counter: Any, recognizer: MoonshineRecognizer
) -> AsyncIterator[Callable[..., Any]]:
    """``await hearing(wav_bytes, **hearing_settings)`` -> (manager, listener, cues): runs the listener to the end."""
    managers: list[ConversationManager] = []
    tasks: list[asyncio.Task[Any]] = []

    async def run(
        audio: bytes, *, voice: Voice | None = None, realtime: bool = False, backend: ScriptedBackend | None = None,
        prepare: Callable[[Listener], Awaitable[object]] | None = None, private: bool = False,
        hears_with: Recognizer | None = None, **hearing_settings: Any,
    ) -> tuple[ConversationManager, Listener, list[tuple[float, Cue]]]:  # fmt: skip
        settings = make_settings(hearing={"enabled": True, "channel": "twitch:stream", **hearing_settings})
        scripted = backend or ScriptedBackend(default="Honestly? That boss never stood a chance.")
        manager = await build_manager(settings, backend=scripted, counter=counter)
        managers.append(manager)
        cues: list[tuple[float, Cue]] = []
        subscription = manager.stage.subscribe()

        async def record() -> None:
            async for cue in subscription:
                cues.append((time.perf_counter(), cue))

        tasks.append(asyncio.create_task(record()))
        speaker = voice or Voice(manager.stage, lambda persona: EspeakSynthesizer() if persona == "pip" else None)
        tasks.append(asyncio.create_task(speaker.run()))
        source = FileSource("host.wav", stream=io.BytesIO(audio), realtime=realtime)
        listener = Listener(
            source, hears_with or recognizer, manager, settings.hearing, on_speech_start=speaker.hush, private=private
        )
        if prepare is not None:  # e.g. push-to-talk pressed before the host speaks
            await prepare(listener)
        await listener.run()
        await asyncio.sleep(0.5)  # the last sentence's synthesis
        return manager, listener, cues

    yield run
    for task in tasks:
        task.cancel()
    for manager in managers:
        await close_manager(manager)


@needs_espeak
async def test_the_host_addressing_the_character_is_stored_answered_and_spoken(hearing: Any) -> None:
    audio = wav_bytes(0.5, speak("Hey Pip, what do you think about the boss fight we just did?"), 1.0)
    manager, listener, cues = await hearing(audio)
    [turn] = listener.turns
    assert turn.addressed, turn.text
    assert turn.reply is not None and turn.reply.text == "Honestly? That boss never stood a chance."
    stored = await manager.memory.recent_messages("twitch", "stream", limit=10)
    host_line, reply_line = stored
    assert (host_line.author_id, host_line.text, host_line.from_moderator) == (HOST_ID, turn.text, True)
    assert reply_line.is_character and reply_line.text == turn.reply.text
    audio_cues = [cue for _, cue in cues if isinstance(cue, AudioCue)]
    assert audio_cues and all(len(cue.wav) > 1000 for cue in audio_cues), "the answer was spoken"
    assert turn.heard is not None and Role.HOST in turn.heard.event.roles


class CountingRecognizer:
    """Takes ``seconds`` per transcription and answers how many samples it was given; keeps each count."""

    name = "counting"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.heard: list[int] = []

    def transcribe(self, samples: np.ndarray) -> str:
        time.sleep(self.seconds)
        self.heard.append(len(samples))
        return f"I said {len(samples)} samples"


async def test_the_line_is_transcribed_while_the_end_silence_runs_so_its_text_is_ready_when_it_ends(
    hearing: Any,
) -> None:
    slow = CountingRecognizer(0.5)
    audio = wav_bytes(0.3, tone(1.0, -20), 1.0)
    _, listener, _ = await hearing(audio, realtime=True, hears_with=slow, end_silence_s=0.45, transcribe_after_s=0.1)
    [turn] = listener.turns
    # Transcribed from the pause (0.1 s + 0.5 s), not after the end (0.45 s + 0.5 s = 0.95 s).
    assert turn.transcribed_at - turn.speech_ended_at < 0.8
    assert len(slow.heard) == 1, "the early transcript is the line's: it is not transcribed again"


async def test_an_early_transcript_is_not_the_line_when_the_host_spoke_on(hearing: Any) -> None:
    counting = CountingRecognizer(0.0)
    # The host pauses, then speaks on until push-to-talk lets go or the audio ends (no end silence).
    audio = wav_bytes(0.3, tone(0.6, -20), 0.3, tone(0.6, -20))
    _, listener, _ = await hearing(audio, realtime=True, hears_with=counting, transcribe_after_s=0.2)
    [turn] = listener.turns
    assert len(counting.heard) == 2 and turn.text == f"I said {max(counting.heard)} samples"


@needs_espeak
async def test_an_unaddressed_sentence_is_stored_but_not_answered(hearing: Any, tmp_path: Path) -> None:
    audio = wav_bytes(0.5, speak("Welcome back to the stream, everyone."), 1.0)
    manager, listener, cues = await hearing(audio)
    [turn] = listener.turns
    assert not turn.addressed and turn.reply is None
    [stored] = await manager.memory.recent_messages("twitch", "stream", limit=10)
    assert stored.author_id == HOST_ID and not stored.is_character
    assert not [cue for _, cue in cues if isinstance(cue, AudioCue)]
    assert list(tmp_path.rglob("*.wav")) == [], "no audio on disk unless the debug setting asks"
    await manager.forget("twitch", HOST_ID)  # the host is forgotten like any regular
    assert await manager.memory.recent_messages("twitch", "stream", limit=10) == []


@needs_espeak
async def test_the_debug_setting_keeps_each_utterance_as_a_wav_file(hearing: Any, tmp_path: Path) -> None:
    audio = wav_bytes(0.5, speak("Welcome back to the stream, everyone."), 1.0)
    await hearing(audio, debug_audio_dir=tmp_path / "heard")
    [kept] = (tmp_path / "heard").glob("*.wav")
    with wave.open(str(kept)) as reader:
        assert reader.getframerate() == MODEL_RATE and reader.getnframes() > MODEL_RATE


@needs_espeak
async def test_always_mode_answers_a_line_that_does_not_name_the_character(hearing: Any) -> None:
    audio = wav_bytes(0.5, speak("Welcome back to the stream, everyone."), 1.0)
    _, listener, _ = await hearing(audio, answer="always")
    [turn] = listener.turns
    assert turn.addressed and turn.reply is not None


@needs_espeak
async def test_push_to_talk_hears_nothing_while_released(hearing: Any) -> None:
    audio = wav_bytes(0.5, speak("Hey Pip, are you awake over there?"), 1.0)
    manager, listener, _ = await hearing(audio, answer="push_to_talk")
    assert listener.turns == []
    assert await manager.memory.recent_messages("twitch", "stream", limit=10) == []


@needs_espeak
async def test_the_host_talking_over_the_character_stops_its_voice_within_200_ms(hearing: Any) -> None:
    # First the host asks (answered, and spoken at length); then, while the answer plays, talks again.
    long_answer = "Well. " + "I have so much to say about that boss, and all of it is good. " * 4
    question = speak("Pip, tell me everything about that boss.")
    audio = wav_bytes(0.3, question, 3.0, speak("Okay, stop, stop."), 1.0)
    _, listener, cues = await hearing(audio, realtime=True, backend=ScriptedBackend(default=long_answer))
    assert len(listener.onsets) == 2
    second_onset = listener.onsets[1]
    stops = [at for at, cue in cues if isinstance(cue, AudioStop) and at >= second_onset]
    assert stops, "the voice was not stopped"
    assert stops[0] - second_onset <= 0.2, f"stopped {stops[0] - second_onset:.3f} s after the host spoke"


# -- push-to-talk --------------------------------------------------------------------------------

TALK_TOKEN = "t" * 32


@pytest.fixture
async def talk_server(manager: ConversationManager) -> AsyncIterator[tuple[OverlayServer, list[tuple[bool, Any]]]]:
    """The overlay server on loopback (its page needs no token) with a recording push-to-talk toggle."""
    pressed: list[tuple[bool, Any]] = []

    def toggle(held: bool, for_s: float | None) -> float | None:
        pressed.append((held, for_s))
        return 60.0 if held else None

    server = OverlayServer(manager.stage, {}, talk=toggle, control_token=TALK_TOKEN)
    await server.start()
    yield server, pressed
    await server.close()


async def test_push_to_talk_over_http_takes_post_with_the_token_even_on_loopback(talk_server: Any) -> None:
    server, pressed = talk_server
    url = f"{server.base}/hearing/talk"
    async with aiohttp.ClientSession() as session:
        async with session.get(url, params={"held": "true", "token": TALK_TOKEN}) as got:
            assert got.status == 405, "a link or an image tag must not press it"
        async with session.post(url, params={"held": "true"}) as untokened:
            assert untokened.status == 403, "on loopback too: any local program or page could press it"
        async with session.post(url, params={"held": "true", "token": "x" * 32}) as wrong:
            assert wrong.status == 403
        evil = {"Origin": "https://evil.example"}
        async with session.post(url, params={"held": "true", "token": TALK_TOKEN}, headers=evil) as forged:
            assert forged.status == 403, "another site's form"
        rebound = {"Host": f"evil.example:{server.port}"}
        async with session.post(url, params={"held": "true", "token": TALK_TOKEN}, headers=rebound) as rebinding:
            assert rebinding.status == 403, "DNS rebinding"
        assert pressed == []
        async with session.post(url, params={"held": "true", "for": "15", "token": TALK_TOKEN}) as held:
            assert held.status == 200 and await held.json() == {"held": True, "releases_in_s": 60.0}
        async with session.post(url, params={"held": "false", "token": TALK_TOKEN}) as released:
            assert released.status == 200 and (await released.json())["held"] is False
        for bad in ({"held": "maybe"}, {"held": "true", "for": "-3"}, {"held": "true", "for": "nan"}):
            async with session.post(url, params={**bad, "token": TALK_TOKEN}) as refused:
                assert refused.status == 400 and "\n" not in (await refused.text()).strip(), bad
    assert pressed == [(True, 15.0), (False, None)]


async def test_push_to_talk_is_not_offered_when_hearing_is_not_in_that_mode(manager: ConversationManager) -> None:
    server = OverlayServer(manager.stage, {})
    await server.start()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{server.base}/hearing/talk", params={"held": "true"}) as off,
        ):
            assert off.status == 404 and "COSTAR_HEARING_ANSWER=push_to_talk" in await off.text()
    finally:
        await server.close()


def test_the_push_to_talk_token_is_made_and_kept_even_on_loopback(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    assert overlay_token(settings) is None, "the page on loopback needs none"
    made = overlay_token(settings, even_on_loopback=True)
    assert made is not None and len(made) >= 16
    assert overlay_token(settings, even_on_loopback=True) == made, "a hotkey set up once keeps working"


async def test_push_to_talk_lets_go_by_itself_so_a_lost_release_never_leaves_the_host_heard(
    manager: ConversationManager,
) -> None:
    settings = HearingSettings(enabled=True, answer="push_to_talk", talk_max_s=0.2)
    listener = Listener(FileSource("-", stream=io.BytesIO(b"")), types.SimpleNamespace(), manager, settings)
    assert not listener.talk_held
    assert listener.push_to_talk(True, 3600) == 0.2, "never longer than COSTAR_HEARING_TALK_MAX_S"
    assert listener.talk_held
    await asyncio.sleep(0.3)
    assert not listener.talk_held
    assert listener.push_to_talk(True, 0.05) == 0.05
    await asyncio.sleep(0.15)
    assert not listener.talk_held


@needs_espeak
async def test_what_the_host_says_while_push_to_talk_is_held_over_http_is_answered(hearing: Any) -> None:
    audio = wav_bytes(0.5, speak("Are you awake over there?"), 1.0)
    answers: list[int] = []

    async def press(listener: Listener) -> None:
        server = OverlayServer(listener.manager.stage, {}, talk=listener.push_to_talk, control_token=TALK_TOKEN)
        await server.start()
        try:
            async with aiohttp.ClientSession() as session:
                params = {"held": "true", "token": TALK_TOKEN}
                async with session.post(f"{server.base}/hearing/talk", params=params) as pressed:
                    answers.append(pressed.status)
        finally:
            await server.close()

    manager, listener, _ = await hearing(audio, answer="push_to_talk", prepare=press)
    assert answers == [200]
    [turn] = listener.turns
    assert turn.addressed and turn.reply is not None, "held: heard and answered without the name"
    assert len(await manager.memory.recent_messages("twitch", "stream", limit=10)) == 2


class _Typed(io.StringIO):
    def isatty(self) -> bool:
        return False


async def test_the_console_holds_and_releases_push_to_talk(settings: Settings, manager: ConversationManager) -> None:
    from bot.console.adapter import ConsoleAdapter

    pressed: list[tuple[bool, float | None]] = []

    def toggle(held: bool, for_s: float | None) -> float | None:
        pressed.append((held, for_s))
        return for_s or 60.0 if held else None

    out = _Typed()
    typed = _Typed("/talk 20\n/talk off\n/talk\n/talk soon\n")
    await ConsoleAdapter(settings, manager, stdin=typed, stdout=out, talk=toggle).start()
    assert pressed == [(True, 20.0), (False, None), (True, None)], "a bad number presses nothing"
    shown = out.getvalue()
    assert "held: the host is heard for 20 s at most" in shown and "released" in shown
    assert "/talk SECONDS" in shown


async def test_the_stream_offers_push_to_talk_on_the_overlay_with_a_kept_token(
    manager: ConversationManager, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    from bot.on_stream import OnStream

    quiet = tmp_path / "quiet.wav"
    quiet.write_bytes(wav_bytes(30.0))
    settings = make_settings(
        overlay={"port": 0, "host": "127.0.0.1"},
        hearing={"enabled": True, "answer": "push_to_talk", "source": str(quiet)},
    )
    on_stream = await OnStream.start(settings, manager)
    try:
        assert on_stream.overlay is not None and on_stream.hearing is not None
        token = (settings.core.data_dir / "overlay-token").read_text().strip()
        url = f"{on_stream.overlay.base}/hearing/talk"
        async with aiohttp.ClientSession() as session:
            async with session.post(url, params={"held": "true"}) as untokened:
                assert untokened.status == 403
            async with session.post(url, params={"held": "true", "token": token}) as pressed:
                assert pressed.status == 200
        assert on_stream.hearing.listener.talk_held
        assert on_stream.talk is not None, "the console's /talk gets it too"
    finally:
        await on_stream.close()


# -- the spoken answer written in chat too -------------------------------------------------------


@needs_espeak
@pytest.mark.parametrize("reply_in_chat", ["console:local", None])
async def test_the_spoken_answer_is_also_written_in_the_chosen_chat_only_when_asked(
    hearing: Any, reply_in_chat: str | None
) -> None:
    from bot.console.adapter import ConsoleAdapter

    chat = _Typed()

    async def open_console(listener: Listener) -> None:  # its send path, as when costar runs
        ConsoleAdapter(listener.manager.settings, listener.manager, stdin=_Typed(""), stdout=chat)

    audio = wav_bytes(0.5, speak("Hey Pip, what do you think about the boss fight we just did?"), 1.0)
    _, listener, cues = await hearing(audio, reply_in_chat=reply_in_chat, prepare=open_console)
    [turn] = listener.turns
    assert turn.reply is not None and [cue for _, cue in cues if isinstance(cue, AudioCue)], "spoken either way"
    written = chat.getvalue()
    if reply_in_chat is None:
        assert written == "", "off by default: spoken only"
    else:
        assert written == "Pip: Honestly? That boss never stood a chance.\n"


@needs_espeak
async def test_the_spoken_answer_is_not_written_in_a_muted_chat(hearing: Any) -> None:
    from bot.console.adapter import ConsoleAdapter

    chat = _Typed()

    async def open_muted_console(listener: Listener) -> None:
        ConsoleAdapter(listener.manager.settings, listener.manager, stdin=_Typed(""), stdout=chat)
        listener.manager.control.set_muted("console:local", True)

    audio = wav_bytes(0.5, speak("Hey Pip, what do you think about the boss fight we just did?"), 1.0)
    _, listener, _ = await hearing(audio, reply_in_chat="console:local", prepare=open_muted_console)
    assert listener.turns[0].reply is not None and chat.getvalue() == ""


@needs_espeak
async def test_an_answer_for_a_chat_that_is_not_running_is_spoken_and_said_so_in_the_log(
    hearing: Any, caplog: pytest.LogCaptureFixture
) -> None:
    audio = wav_bytes(0.5, speak("Hey Pip, what do you think about the boss fight we just did?"), 1.0)
    with caplog.at_level(logging.WARNING):
        _, listener, _ = await hearing(audio, reply_in_chat="twitch:elsewhere")
    assert listener.turns[0].reply is not None
    assert any("no twitch adapter is running" in record.getMessage() for record in caplog.records)


def test_a_chat_for_the_spoken_answers_without_its_platform_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match="COSTAR_HEARING_REPLY_IN_CHAT"):
        load_settings(None, hearing={"reply_in_chat": "yourlogin"})


# -- the host's live captions --------------------------------------------------------------------


def test_only_a_page_that_asks_for_the_hosts_captions_gets_them() -> None:
    host = HostCaptionCue("1", "twitch:stream", "Host", "welcome back everyone", HOST_ID)
    character = NoticeCue("2", "twitch:stream", "pip", "Pip", "Thanks for the raid!")
    assert [cue_filter({})(cue) for cue in (host, character)] == [False, True], "a character page stays one"
    assert [cue_filter({"captions": "host"})(cue) for cue in (host, character)] == [True, False]
    both = cue_filter({"captions": "host,character", "persona": "pip"})
    assert both(host) and both(character), "persona= narrows the character's lines, not the host's"
    assert not cue_filter({"captions": "host", "channel": "discord"})(host)


@needs_espeak
@pytest.mark.parametrize(
    ("captions", "private", "captioned"),
    [(True, False, True), (False, False, False), (True, True, False)],
    ids=["on", "off by default", "never for a private conversation"],
)
async def test_the_hosts_lines_are_captioned_only_when_enabled_and_never_in_private(
    hearing: Any, captions: bool, private: bool, captioned: bool
) -> None:
    audio = wav_bytes(0.5, speak("Welcome back to the stream, everyone."), 1.0)
    _, listener, cues = await hearing(audio, captions=captions, private=private)
    [turn] = listener.turns
    shown = [cue for _, cue in cues if isinstance(cue, HostCaptionCue)]
    if captioned:
        assert [(cue.name, cue.text, cue.channel) for cue in shown] == [("Host", turn.text, "twitch:stream")]
    else:
        assert shown == []


async def test_a_page_opened_with_captions_host_receives_the_hosts_line(manager: ConversationManager) -> None:
    server = OverlayServer(manager.stage, {})
    await server.start()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{server.base}/overlay/feed?captions=host") as host_page,
            session.ws_connect(f"{server.base}/overlay/feed") as character_page,
        ):
            assert (await host_page.receive_json())["type"] == "hello"
            assert (await character_page.receive_json())["type"] == "hello"
            manager.stage.publish(HostCaptionCue("7", "twitch:stream", "Host", "okay chat, boss time", HOST_ID))
            manager.stage.publish(NoticeCue("8", "twitch:stream", "pip", "Pip", "Good luck!"))
            assert await host_page.receive_json() == {
                "type": "host", "id": "7", "channel": "twitch:stream", "name": "Host", "text": "okay chat, boss time",
            }  # fmt: skip
            assert (await character_page.receive_json())["id"] == "8", "the character's page never saw the host's"
    finally:
        await server.close()


async def test_forgetting_the_host_drops_their_captions_still_queued(manager: ConversationManager) -> None:
    with manager.stage.subscribe() as page:
        manager.stage.publish(HostCaptionCue("3", "twitch:stream", "Host", "my address is", HOST_ID))
        assert manager.stage.drop_viewer("twitch", HOST_ID) == 1
        assert page.pending() == 0


async def test_hearing_on_a_discord_channel_marked_private_is_private(
    manager: ConversationManager, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    from bot.on_stream import OnStream

    quiet = tmp_path / "quiet.wav"
    quiet.write_bytes(wav_bytes(30.0))
    for private_channels, private in (("123", True), ("456", False)):
        settings = make_settings(
            discord={"private_channels": private_channels},
            hearing={"enabled": True, "source": str(quiet), "channel": "discord:123", "captions": True},
        )
        on_stream = await OnStream.start(settings, manager)
        try:
            assert on_stream.hearing is not None and on_stream.hearing.listener.private is private
        finally:
            await on_stream.close()


@pytest.mark.skipif(chromium_binary() is None, reason="Debian's chromium is not installed (make setup installs it)")
async def test_the_overlay_page_with_captions_host_shows_the_streamers_line(
    manager: ConversationManager, tmp_path: Path
) -> None:
    server = OverlayServer(manager.stage, {})
    await server.start()
    try:
        async with launch_chromium(tmp_path / "chromium-profile") as browser:
            await browser.open(f"{server.url}?captions=host&fade=30")
            await browser.wait_for("window.costarOverlay.hellos === 1")
            manager.stage.publish(HostCaptionCue("9", "twitch:stream", "Host", "okay chat, boss time", HOST_ID))
            await browser.wait_for("document.querySelector('.caption .text')?.textContent === 'okay chat, boss time'")
            assert await browser.evaluate("document.querySelector('.caption .name').textContent") == "Host"
    finally:
        await server.close()


# -- a reply the host talks over is stored as cut ------------------------------------------------


@needs_espeak
async def test_a_reply_the_host_talks_over_is_stored_as_far_as_it_was_spoken(hearing: Any) -> None:
    long_answer = "Well. " + "I have so much to say about that boss, and all of it is good. " * 4
    question = speak("Pip, tell me everything about that boss.")
    audio = wav_bytes(0.3, question, 3.0, speak("Okay, stop, stop."), 1.0)
    backend = ScriptedBackend(default=long_answer)
    manager, listener, cues = await hearing(audio, realtime=True, backend=backend)
    asked = listener.turns[0]
    assert asked.addressed and asked.reply is not None and asked.reply.text == long_answer.strip()
    assert [cue for at, cue in cues if isinstance(cue, AudioStop) and at >= listener.onsets[1]], "the voice stopped"
    stored = [line for line in await manager.memory.recent_messages("twitch", "stream", limit=10) if line.is_character]
    assert stored[0].text.endswith(CUT_MARK), "memory and the model's history must not take the rest as said"
    said = stored[0].text.removesuffix(CUT_MARK).strip()
    assert said and long_answer.startswith(said), said
    assert len(said) < len(long_answer.strip()), "the sentences synthesised but not yet played were never said"
    await answer(manager, "pip so what were you saying?")
    history = " ".join(str(message.content) for message in backend.requests[-1].messages)
    assert stored[0].text in history and long_answer.strip() not in history, "the model reads the cut reply"


def test_a_reply_cut_before_it_was_stored_is_written_cut_when_it_is() -> None:
    written: list[tuple[int, str]] = []
    cuts = ReplyCuts()
    cuts.writer = lambda row, spoken: written.append((row, spoken))
    cuts.cut("5", "Well.")  # the host talked while the reply was still being written
    cuts.stored("4", 40)  # another reply, never cut: nothing to write
    assert written == []
    cuts.stored("5", 50)
    cuts.cut("4", "")  # cut after it was stored, before a word of it played
    assert written == [(50, "Well."), (40, "")]
    assert cut_text("") == CUT_MARK and cut_text("Well.") == f"Well. {CUT_MARK}"
