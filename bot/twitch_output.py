"""What may be said in Twitch chat: the last guard before a message leaves.

The manager already post-processes replies with ``TWITCH_LIMITS`` (so the stored reply is the
sent one); this guard runs on everything the adapter sends, command answers included, and is a
no-op on text that already obeys the rules.
"""

from __future__ import annotations

import re

from engine.output.postprocess import PlatformLimits, shorten_to

__all__ = ["MAX_MESSAGE_CHARS", "TWITCH_LIMITS", "twitch_safe"]

# Helix Send Chat Message refuses more than 500 characters (see docs/twitch.md).
MAX_MESSAGE_CHARS = 500
# Twitch reads a message starting with "/" or "." as a chat command (see docs/twitch.md).
_COMMAND_PREFIXES = ("/", ".")
_MAX_MENTIONS = 3
_MENTION = re.compile(r"@(\w+)")

# Registered on the manager, so the reply it stores is the one Twitch gets.
TWITCH_LIMITS = PlatformLimits(
    max_chars=MAX_MESSAGE_CHARS, single_line=True, forbidden_prefixes=_COMMAND_PREFIXES, neutralise_mass_mentions=True
)


def twitch_safe(text: str) -> str | None:
    """One line, no command prefix, few mentions, at most 500 characters; None if nothing is left."""
    line = " ".join(text.split())
    line = _defuse_mass_mentions(line)
    while line.startswith(_COMMAND_PREFIXES):
        line = line[1:].lstrip()
    line = shorten_to(line, MAX_MESSAGE_CHARS)
    return line or None


def _defuse_mass_mentions(line: str) -> str:
    """Keep the first few @mentions; later ones lose their @ so nobody is pinged in bulk."""
    seen = 0

    def keep_or_drop(match: re.Match[str]) -> str:
        nonlocal seen
        seen += 1
        return match.group(0) if seen <= _MAX_MENTIONS else match.group(1)

    return _MENTION.sub(keep_or_drop, line)

