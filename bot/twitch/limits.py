"""What may be said in Twitch chat: the last guard before a message leaves.

The manager already post-processes replies with ``TWITCH_LIMITS`` (so the stored reply is the
sent one); this guard runs on everything the adapter sends, command answers included, and is a
no-op on text that already obeys the rules. Twitch's limits are declared here (the platform owns
them; ``bot.platforms`` registers them on the manager); the rules live in :mod:`engine.output.limits`.
"""

from __future__ import annotations

from engine.output.limits import (
    COMMAND_PREFIXES,
    MAX_MENTIONS,
    PlatformLimits,
    cap_mentions,
    neutralise_mass_mentions,
    strip_command_prefix,
)
from engine.output.postprocess import shorten_to

__all__ = ["MAX_MESSAGE_CHARS", "TWITCH_LIMITS", "TWITCH_MAX_MESSAGE_CHARS", "twitch_safe"]

# Helix "Send Chat Message" refuses messages longer than 500 characters:
# https://dev.twitch.tv/docs/api/reference/#send-chat-message
TWITCH_MAX_MESSAGE_CHARS = 500
MAX_MESSAGE_CHARS = TWITCH_MAX_MESSAGE_CHARS
# The reply stored is the one Twitch gets: one line, no command prefix, at most 500 characters.
TWITCH_LIMITS = PlatformLimits(
    max_chars=TWITCH_MAX_MESSAGE_CHARS,
    single_line=True,
    forbidden_prefixes=COMMAND_PREFIXES,
    neutralise_mass_mentions=True,
)


def twitch_safe(text: str) -> str | None:
    """One line, no command prefix, few mentions, at most 500 characters; None if nothing is left."""
    line = " ".join(text.split())
    line = cap_mentions(neutralise_mass_mentions(line), MAX_MENTIONS)
    line = strip_command_prefix(line, TWITCH_LIMITS.forbidden_prefixes)
    line = shorten_to(line, MAX_MESSAGE_CHARS)
    return line or None
