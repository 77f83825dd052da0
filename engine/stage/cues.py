"""What travels on the stage feed: one frozen dataclass per kind, each with its wire form.

The wire form is what the overlay page receives as JSON; ``type`` tells the kinds apart. A
reply cue carries the whole text so far, not a delta, so a page that missed one still shows the
right words.
"""

from __future__ import annotations

import base64
import enum
from dataclasses import dataclass
from typing import Any

__all__ = ["AudioCue", "AudioStop", "Cue", "HostCaptionCue", "NoticeCue", "ReplyCue", "ReplyState"]


class ReplyState(enum.StrEnum):
    STREAMING = "streaming"  # more text is coming
    DONE = "done"  # the final text: the page fades it out after a while
    RETRACTED = "retracted"  # withheld by moderation or lost to an error: take it off screen now


@dataclass(frozen=True, slots=True)
class ReplyCue:
    cue_id: str
    channel: str  # ChatEvent.channel_key, e.g. "twitch:somechannel"
    persona_id: str
    persona_name: str
    text: str
    state: ReplyState
    answering_author: str | None = None  # the line it answers, when that line passed moderation
    answering_text: str | None = None
    heard_at: float = 0.0  # time.perf_counter() when the chat line was stored
    viewer_id: str | None = None  # the platform user id of whoever it answers (never sent): forget finds it

    def wire(self) -> dict[str, Any]:
        answering = None
        if self.answering_text is not None:
            answering = {"author": self.answering_author, "text": self.answering_text}
        return {
            "type": "reply",
            "id": self.cue_id,
            "channel": self.channel,
            "persona": self.persona_id,
            "name": self.persona_name,
            "text": self.text,
            "state": self.state.value,
            "answering": answering,
        }


@dataclass(frozen=True, slots=True)
class NoticeCue:
    """A finished line the character says on its own (a raid thank-you): shown like a done reply."""

    cue_id: str
    channel: str
    persona_id: str
    persona_name: str
    text: str
    kind: str = "notice"  # what prompted it, e.g. "raid"
    viewer_id: str | None = None  # the platform user id of whoever prompted it (never sent)

    def wire(self) -> dict[str, Any]:
        return {
            "type": "notice",
            "id": self.cue_id,
            "channel": self.channel,
            "persona": self.persona_id,
            "name": self.persona_name,
            "text": self.text,
            "kind": self.kind,
        }


@dataclass(frozen=True, slots=True)
class AudioCue:
    """One spoken sentence of a reply, as a WAV file; ``seq`` counts from 0 within the reply."""

    cue_id: str  # the reply's cue id
    channel: str
    persona_id: str
    seq: int
    sentence: str
    wav: bytes
    duration_s: float

    def wire(self) -> dict[str, Any]:
        return {
            "type": "audio",
            "id": self.cue_id,
            "channel": self.channel,
            "persona": self.persona_id,
            "seq": self.seq,
            "duration": round(self.duration_s, 3),
            "wav": base64.b64encode(self.wav).decode("ascii"),
        }


@dataclass(frozen=True, slots=True)
class AudioStop:
    """Stop speaking this reply: what is playing stops, what is queued is dropped."""

    cue_id: str
    channel: str
    persona_id: str

    def wire(self) -> dict[str, Any]:
        return {"type": "audio_stop", "id": self.cue_id, "channel": self.channel, "persona": self.persona_id}


@dataclass(frozen=True, slots=True)
class HostCaptionCue:
    """A line the host said, as recognised (hearing, COSTAR_HEARING_CAPTIONS): a live caption of
    the streamer, not of the character. Only pages opened with ``captions=host`` receive it."""

    cue_id: str
    channel: str
    name: str  # COSTAR_HEARING_HOST_NAME
    text: str
    viewer_id: str  # the host's user id (never sent): forgetting the host drops it too

    def wire(self) -> dict[str, Any]:
        return {"type": "host", "id": self.cue_id, "channel": self.channel, "name": self.name, "text": self.text}


Cue = ReplyCue | NoticeCue | AudioCue | AudioStop | HostCaptionCue
