"""The microphone, or any input device chosen by name (a virtual cable from OBS or Discord), via PortAudio.

``sounddevice`` is imported here only, when a device is opened: a machine without PortAudio
(Debian ``libportaudio2``) still chats, and says in one line why it cannot hear. PortAudio
calls back on its own thread; chunks cross to the event loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from engine.errors import HearingUnavailable
from engine.hearing.audio import AudioChunk

__all__ = ["InputDevice", "MicrophoneSource", "input_devices", "pick_device"]

log = logging.getLogger(__name__)

_BLOCK_S = 0.02  # PortAudio hands over 20 ms at a time: the segmenter's frame
_QUEUE_CHUNKS = 500  # 10 s of audio; a loop that falls further behind loses the oldest


@dataclass(frozen=True, slots=True)
class InputDevice:
    index: int
    name: str
    channels: int
    default_rate: float
    is_default: bool


def _sounddevice() -> ModuleType:
    try:
        import sounddevice
    except (ImportError, OSError) as exc:  # OSError: the module is there but libportaudio is not
        raise HearingUnavailable(
            f"PortAudio is not available: `apt-get install libportaudio2` and pip install 'costar[hearing]' ({exc})"
        ) from exc
    module: ModuleType = sounddevice
    return module


def input_devices(sounddevice: ModuleType | None = None) -> list[InputDevice]:
    """Every device that can record, in PortAudio's order."""
    sd = sounddevice or _sounddevice()
    try:
        listed: list[dict[str, Any]] = list(sd.query_devices())
        default_input = sd.default.device[0]
    except Exception as exc:  # PortAudioError and friends
        raise HearingUnavailable(f"cannot list audio devices: {exc}") from exc
    return [
        InputDevice(index, str(info["name"]), int(info["max_input_channels"]), float(info["default_samplerate"]),
                    index == default_input)
        for index, info in enumerate(listed)
        if int(info.get("max_input_channels", 0)) > 0
    ]  # fmt: skip


def pick_device(devices: list[InputDevice], wanted: str | None) -> InputDevice:
    """The device whose name contains ``wanted`` (case-insensitive), else the default input."""
    if not devices:
        raise HearingUnavailable("no microphone or other input device found")
    if wanted:
        matches = [device for device in devices if wanted.lower() in device.name.lower()]
        if not matches:
            names = ", ".join(repr(device.name) for device in devices)
            raise HearingUnavailable(f"no input device named like {wanted!r}; there are: {names}")
        return matches[0]
    return next((device for device in devices if device.is_default), devices[0])


class MicrophoneSource:
    def __init__(self, device: str | None = None, *, sample_rate: int = 16000) -> None:
        self.wanted = device
        self.sample_rate = sample_rate
        self._sd = _sounddevice()
        self.devices = input_devices(self._sd)
        self.device = pick_device(self.devices, device)
        self.name = self.device.name
        self._stream: Any = None

    def describe(self) -> str:
        listed = "; ".join(f"{d.index}: {d.name}{' (default)' if d.is_default else ''}" for d in self.devices)
        return f"input devices: {listed}. Listening on {self.device.index}: {self.device.name}"

    async def chunks(self) -> AsyncIterator[AudioChunk]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[AudioChunk | BaseException] = asyncio.Queue(maxsize=_QUEUE_CHUNKS)

        def offer(item: AudioChunk | BaseException) -> None:
            if queue.full():
                queue.get_nowait()  # behind: the oldest audio goes, never the loop's time
            queue.put_nowait(item)

        def callback(data: Any, frames: int, time: Any, status: Any) -> None:  # PortAudio's thread
            samples = np.asarray(data, dtype=np.float32).mean(axis=1, dtype=np.float32)
            loop.call_soon_threadsafe(offer, AudioChunk(samples, self.sample_rate))

        def finished() -> None:  # the device went away (unplugged, the cable app closed)
            gone = HearingUnavailable(f"the input device {self.device.name!r} stopped")
            loop.call_soon_threadsafe(offer, gone)

        self._open(callback, finished)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.close()

    def _open(self, callback: Any, finished: Any) -> None:
        try:
            self._stream = self._sd.InputStream(
                device=self.device.index,
                channels=1,
                samplerate=self.sample_rate,
                dtype="float32",
                blocksize=int(self.sample_rate * _BLOCK_S),
                callback=callback,
                finished_callback=finished,
            )
            self._stream.start()
        except Exception as exc:  # PortAudioError: busy device, a rate it does not take
            raise HearingUnavailable(
                f"cannot open {self.device.name!r} at {self.sample_rate} Hz: {exc}"
                f" (its own rate is {self.device.default_rate:g} Hz: set COSTAR_HEARING_SAMPLE_RATE)"
            ) from exc

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception as exc:  # closing a device that is already gone
                log.debug("hearing: closing %s: %s", self.device.name, exc)
