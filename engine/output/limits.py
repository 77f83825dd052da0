"""The one home of what each platform refuses or misreads in a message the bot sends.

Owns :class:`PlatformLimits` and the rules that used to be written in several places. Each platform
declares its own instance in its own package and ``bot.platforms`` registers them on the manager, so
a replayed line comes out as its platform would get it.

- the command-prefix rule: chat platforms run a message that starts with "/" or "." as a chat
  command (:func:`starts_with_command`, :func:`strip_command_prefix`);
- the mass-mention rule: "@everyone" / "@here" ping a whole room
  (:func:`has_mass_mention`, :func:`neutralise_mass_mentions`);
- the one-message rule: a reply is one chat message, so a single-line platform gets it on one
  line without code fences, and none ends on a dangling list marker (:func:`as_chat_message`).

Post-processing (:mod:`engine.output.postprocess`), the output moderation checks
(:mod:`engine.moderation.checks`) and the platforms' send guards all call these.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = [
    "BLANKS_AS_SPACES",
    "BLANK_LOOKALIKES",
    "COMMAND_PREFIXES",
    "MAX_MENTIONS",
    "PlatformLimits",
    "as_chat_message",
    "cap_mentions",
    "has_mass_mention",
    "neutralise_mass_mentions",
    "starts_with_command",
    "strip_command_prefix",
    "strip_invisible_start",
]

# Chat runs a message starting with "/" or "." as a chat command ("/ban", ".timeout"):
# https://help.twitch.tv/s/article/chat-commands (the "." form is the legacy IRC spelling).
COMMAND_PREFIXES: tuple[str, ...] = ("/", ".")
# More @mentions than this in one bot message pings people in bulk; later ones lose their "@".
MAX_MENTIONS = 3

# "@everyone", "@here", also "@@here" and "@ everyone" (some clients still highlight those).
_MASS_MENTION = re.compile(r"@+\s*(everyone|here)\b", re.IGNORECASE)
_PLAIN_MENTION = re.compile(r"@(\w+)")


@dataclass(frozen=True, slots=True)
class PlatformLimits:
    """What a platform refuses or misreads; registered per platform on the manager."""

    max_chars: int | None = None
    single_line: bool = False
    forbidden_prefixes: tuple[str, ...] = ()
    neutralise_mass_mentions: bool = True


# -- the one-message rule ---------------------------------------------------------------------

# A code fence ("```python", "~~~") means nothing in a one-line chat message.
_CODE_FENCE = re.compile(r"(```|~~~)[\w+#-]*")
# A list item the model started and never wrote ("...\n2." or "...\n- "), at the very end.
_DANGLING_LIST_MARKER = re.compile(r"\n[ \t]*(?:\d{1,3}[.)]|[-*•])?[ \t]*$")


def as_chat_message(text: str, *, single_line: bool) -> str:
    """``text`` as one chat message: never ending on a dangling list marker and, on a platform
    that shows one line per message (stream chat, the console), on one line without code fences.

    Only a marker on a line of its own counts as dangling: "I came in at number 1." keeps its "1.".
    """
    text = _DANGLING_LIST_MARKER.sub("", text.rstrip(" \t"))
    if single_line:
        text = " ".join(_CODE_FENCE.sub(" ", text).split())
    return text.strip()


# -- the command-prefix rule ------------------------------------------------------------------


# What may stand, unseen, in front of a command prefix: format characters (zero-width space and
# joiners, word joiner, BOM, soft hyphen, Mongolian vowel separator), spaces of every width,
# control characters, combining marks with nothing to sit on (U+0301) and the letters drawn as a
# blank (Hangul filler, Braille blank). A viewer cannot see "\u200b/ban x" start with anything but "/ban".
# Characters Unicode files as letters or symbols that are drawn as an empty cell: the Hangul
# fillers (U+115F, U+1160, U+3164, U+FFA0, Default_Ignorable in Unicode's DerivedCoreProperties)
# and the Braille blank (U+2800). Chat spammers use them as "invisible" padding that no Cf/Zs
# rule catches; the one home of that list (moderation's normaliser uses it too).
BLANK_LOOKALIKES = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# ``text.translate(BLANKS_AS_SPACES)``: a line of blank look-alikes reads as the blank it is drawn as.
BLANKS_AS_SPACES = str.maketrans(dict.fromkeys(BLANK_LOOKALIKES, " "))
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Zs", "Zl", "Zp", "Cc", "Mn", "Me"})
# Characters drawn as a prefix: NFKC folds the fullwidth and small forms (U+FF0F, U+FF0E, U+FE52);
# these slashes it leaves alone. A line starting U+FF0F "ban" reads as a command to everyone watching.
_PREFIX_LOOKALIKES = {"\u2215": "/", "\u2044": "/", "\u29f8": "/"}


def _unseen(char: str) -> bool:
    return char in BLANK_LOOKALIKES or unicodedata.category(char) in _INVISIBLE_CATEGORIES


def strip_invisible_start(text: str) -> str:
    """``text`` without the leading characters a reader cannot see (Unicode Cf, Zs, Cc, Mn, line
    breaks, blank-drawn letters)."""
    start = 0
    while start < len(text) and _unseen(text[start]):
        start += 1
    return text[start:]


def _as_prefix(char: str) -> str:
    """The prefix ``char`` is drawn as (U+FF0F FULLWIDTH SOLIDUS is "/"), else ``char`` itself."""
    return _PREFIX_LOOKALIKES.get(char) or unicodedata.normalize("NFKC", char)


def _starts_with_prefix(text: str, prefixes: tuple[str, ...]) -> bool:
    return bool(text) and (text.startswith(prefixes) or _as_prefix(text[0]) in prefixes)


def starts_with_command(text: str, prefixes: tuple[str, ...] = COMMAND_PREFIXES) -> bool:
    """Whether the platform would read ``text`` as a chat command, or a reader would think it does
    (leading invisible text is ignored, prefix look-alikes count)."""
    return _starts_with_prefix(strip_invisible_start(text), prefixes)


def strip_command_prefix(text: str, prefixes: tuple[str, ...] = COMMAND_PREFIXES) -> str:
    """``text`` without leading invisible characters and command prefixes ("/ /me hi" becomes "me hi")."""
    stripped = strip_invisible_start(text)
    while _starts_with_prefix(stripped, prefixes):
        stripped = strip_invisible_start(stripped[1:])
    return stripped


# -- the mass-mention rule --------------------------------------------------------------------


def has_mass_mention(text: str) -> bool:
    """Whether ``text`` pings a whole room (@everyone / @here)."""
    return _MASS_MENTION.search(text) is not None


def neutralise_mass_mentions(text: str) -> str:
    """@everyone / @here become the plain words "everyone" / "here"."""
    return _MASS_MENTION.sub(lambda match: match.group(1), text)


def cap_mentions(text: str, keep: int = MAX_MENTIONS) -> str:
    """Keep the first ``keep`` @mentions; later ones lose their "@" so nobody is pinged in bulk."""
    seen = 0

    def keep_or_drop(match: re.Match[str]) -> str:
        nonlocal seen
        seen += 1
        return match.group(0) if seen <= keep else match.group(1)

    return _PLAIN_MENTION.sub(keep_or_drop, text)
