"""Where a line was said, kept with it and with every note made of it (migration 7).

A viewer's words stay in the place they were said. A place is a string:

- ``dm:<channel>``: a private conversation outside any server (a Discord DM);
- ``server:<guild>``: a Discord server's channels; ``server:<guild>:private:<channel>`` one the
  streamer marked private (``DISCORD_PRIVATE_CHANNELS``);
- ``channel:<channel>``: a Twitch or console channel (the channel is the community);
- ``private``: a note of unknown origin (kept from before places were stored, no source line):
  treated like a DM.

A note or line *is visible in* a conversation's place when it was said there, or in the public
part of the same server (a private channel sees its server's notes, never the reverse), or when
the conversation is a DM: there only the viewer reads the character's answer, so their own notes
from anywhere may be used. A moderator's look-up covers the notes *within* their server or
channel, the private channels of that server included.
"""

from __future__ import annotations

from memory.records import IncomingLine

__all__ = ["UNKNOWN_PLACE", "line_place", "place_of", "visible_in_sql", "within_sql"]

UNKNOWN_PLACE = "private"


def place_of(channel_id: str, server_id: str | None, private: bool = False) -> str:
    """The place of a conversation on its platform (users and notes are per platform already)."""
    if server_id is None:
        return f"dm:{channel_id}" if private else f"channel:{channel_id}"
    return f"server:{server_id}:private:{channel_id}" if private else f"server:{server_id}"


def line_place(line: IncomingLine) -> str:
    return place_of(line.channel_id, line.server_id, line.private)


def visible_in_sql(column: str) -> str:
    """SQL: a row whose place is in ``column`` may be shown in the place bound as ``?`` (three times)."""
    return f"(substr(?, 1, 3) = 'dm:' OR {column} = ? OR substr(?, 1, length({column}) + 1) = {column} || ':')"


def within_sql(column: str) -> str:
    """SQL: a row whose place is in ``column`` lies within the place bound as ``?`` (three times)."""
    return f"({column} = ? OR substr({column}, 1, length(?) + 1) = ? || ':')"
