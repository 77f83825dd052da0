"""The engine's exception tree. Adapters turn these into words a viewer sees; nothing else does.

EngineError
├── SettingsError          a setting is missing or malformed (names the variable)
├── PersonaNotFound        no installed persona by that name
├── MemoryUnavailable      memory could not store or read (bad path, locked, disk full)
├── VoiceUnavailable       the speech engine is missing or failed (names the engine and the fix)
├── HearingUnavailable     no microphone, a device gone, unreadable audio, no recognizer
├── ReviewRefused          a held reply is no longer waiting, or its edited text failed moderation
└── BackendError           the language model could not produce a reply
    ├── BackendUnavailable connection refused, 503, circuit open, timeout
    ├── ContextTooLong     the server refused the prompt as too long
    └── ModelNotFound      the server does not know the model / adapter name
"""

from __future__ import annotations

import difflib

__all__ = [
    "BackendError",
    "BackendUnavailable",
    "ContextTooLong",
    "EngineError",
    "HearingUnavailable",
    "MemoryUnavailable",
    "ModelNotFound",
    "PersonaNotFound",
    "ReviewRefused",
    "SettingsError",
    "VoiceUnavailable",
]


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""


class SettingsError(EngineError):
    pass


class PersonaNotFound(EngineError):
    def __init__(self, name: str, available: list[str]) -> None:
        self.name = name
        self.available = available
        listing = ", ".join(available) or "none installed"
        close = difflib.get_close_matches(name.lower(), available, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        super().__init__(f"no persona named {name!r}{hint} (available: {listing})")


class MemoryUnavailable(EngineError):
    """A :class:`memory.MemoryStoreError` at the engine's boundary; the message says why."""


class BackendError(EngineError):
    pass


class BackendUnavailable(BackendError):
    pass


class ContextTooLong(BackendError):
    pass


class ModelNotFound(BackendError):
    def __init__(self, model: str, message: str | None = None) -> None:
        self.model = model
        super().__init__(message or f"the model server does not know {model!r}")


class VoiceUnavailable(EngineError):
    """The character could not speak: espeak-ng or piper is missing, or a synthesis failed."""


class HearingUnavailable(EngineError):
    """The character cannot hear the host: no microphone or device, audio it cannot read, or no
    speech recognizer (names the device or file and the fix). Chat goes on without hearing."""


class ReviewRefused(EngineError):
    """A decision on a held reply cannot be carried out: it was already sent, dropped or went
    stale, or the edited text did not pass output moderation (the reasons are in the message)."""
