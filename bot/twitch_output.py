"""What may be said in Twitch chat: the last guard before a message leaves.

The manager already post-processes replies with ``TWITCH_LIMITS`` (so the stored reply is the
sent one); this guard runs on everything the adapter sends, command answers included, and is a
no-op on text that already obeys the rules. The rules and limits themselves live in
:mod:`engine.output.limits`.
"""

from __future__ import annotations

from engine.output.limits import (
    TWITCH_LIMITS,
    TWITCH_MAX_MENTIONS,
    TWITCH_MAX_MESSAGE_CHARS,
    cap_mentions,
    neutralise_mass_mentions,
    strip_command_prefix,
)
from engine.output.postprocess import shorten_to

__all__ = ["MAX_MESSAGE_CHARS", "TWITCH_LIMITS", "twitch_safe"]

MAX_MESSAGE_CHARS = TWITCH_MAX_MESSAGE_CHARS


def twitch_safe(text: str) -> str | None:
    """One line, no command prefix, few mentions, at most 500 characters; None if nothing is left."""
    line = " ".join(text.split())
    line = cap_mentions(neutralise_mass_mentions(line), TWITCH_MAX_MENTIONS)
    line = strip_command_prefix(line, TWITCH_LIMITS.forbidden_prefixes)
    line = shorten_to(line, MAX_MESSAGE_CHARS)
    return line or None
