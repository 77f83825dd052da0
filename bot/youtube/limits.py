"""What YouTube Live chat accepts from the bot: one line, at most 200 characters a message.

``liveChatMessages.insert`` refuses a longer message (docs/youtube.md has the source).
"""

from __future__ import annotations

from engine.output.limits import PlatformLimits, cap_mentions, neutralise_mass_mentions
from engine.output.postprocess import shorten_to

__all__ = ["MAX_MESSAGE_CHARS", "YOUTUBE_LIMITS", "youtube_safe"]

MAX_MESSAGE_CHARS = 200
YOUTUBE_LIMITS = PlatformLimits(max_chars=MAX_MESSAGE_CHARS, single_line=True, neutralise_mass_mentions=True)


def youtube_safe(text: str) -> str | None:
    """One line, few mentions, at most 200 characters; None if nothing is left."""
    line = cap_mentions(neutralise_mass_mentions(" ".join(text.split())))
    return shorten_to(line, MAX_MESSAGE_CHARS) or None
