"""Pure detectors the moderator combines: words, slurs, links, spam signals, mentions, prefixes.

The command-prefix and mass-mention rules themselves live in :mod:`engine.output.limits`
(re-exported here for the moderator); this module only adds the "too many mentions" count.

Each takes text (and the rule's parameters) and returns what it found, or nothing; none keeps
state and none decides what to do about a finding.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import tldextract

from engine.moderation.normalize import matching_words, normalize_for_matching, squash
from engine.output.limits import (
    COMMAND_PREFIXES,
    has_mass_mention,
    neutralise_mass_mentions,
    starts_with_command,
    strip_command_prefix,
)

__all__ = [
    "COMMAND_PREFIXES",
    "WordList",
    "caps_shouting",
    "defuse_mentions",
    "domain_allowed",
    "find_links",
    "is_slur",
    "mass_mention",
    "remove_links",
    "repeated",
    "slur_in",
    "starts_with_command",
    "strip_command_prefix",
    "warm_link_rules",
]

_SLUR_FILE = Path(__file__).parent / "data" / "slurs.sha256"
_SLUR_SALT = "costar-slur:"

# Spelled-out dots ("evil dot com") count only before one of these, so "the dot is red" stays prose.
_SPELLED_DOT_TLDS = (
    "com|net|org|io|gg|tv|ly|me|co|xyz|ru|info|biz|link|app|dev|live|shop|site|online|club|top|to|cc|be|"
    "uk|de|fr|es|it|nl|pl|us|ca|au|jp|cn|in|br|su|ws|tk|ml|ga|cf|gq|sh|ai|so|gl|am|fm|click|download|zip|mov|"
    "gift|store|icu|pw|lol|fun|win|bid|rest|cam|sbs|cfd"
)
# Label separators: the full stop and the three IDNA also reads as one (RFC 3490, section 3.1):
# ideographic, fullwidth and halfwidth ideographic full stops. Browsers open "evil\u3002com".
_DOT = r"[.\u3002\uff0e\uff61]"
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# Candidates only: a bare name counts as a link when its ending is a public suffix (_is_domain).
_URL = re.compile(
    r"(?:(?:https?|ftp)://|www\.)(?P<host>[^\s/?#:]+)[^\s]*"
    rf"|(?<![\w.-])(?P<ip>(?:{_OCTET}\.){{3}}{_OCTET})(?=[/:])[^\s]*"
    rf"|(?<![\w-])(?P<bare>(?:[^\W_](?:[\w-]{{0,61}}[^\W_])?{_DOT})+(?:[^\W\d_]{{2,63}}|xn--[a-z0-9-]{{1,59}}))"
    r"(?![\w-])(?:[/:?#][^\s]*)?",
    re.IGNORECASE,
)
# "evil dot com", "evil[.]com", "evil (dot) com": only before a known TLD, so "the dot" stays prose.
_OBFUSCATED_DOT = re.compile(
    rf"(\w)\s*(?:\[\s*(?:\.|dot)\s*\]|\(\s*(?:\.|dot)\s*\)|\s+dot\s+)\s*((?:{_SPELLED_DOT_TLDS})\b)",
    re.IGNORECASE,
)
# Necessary for a match of the patterns above (each needs "://", a dot before a host character,
# or a spelled-out dot), and far cheaper to look for.
_LINK_HINT = re.compile(rf"://|{_DOT}[^\s/?#:]")
_DOT_HINT = re.compile(r"dot|[\[(]", re.IGNORECASE)
_MENTION = re.compile(r"<@[!&]?\d+>|(?<![\w@])@\w+")


# -- words and slurs -------------------------------------------------------------------------


class WordList:
    """Banned words and phrases, matched on whole normalised words (so "class" never hits "ass")."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.phrases = tuple(sorted({" ".join(matching_words(entry)) for entry in entries} - {""}))

    def first_match(self, text: str) -> str | None:
        if not self.phrases:
            return None
        words = matching_words(text)
        joined = f" {' '.join(words)} "
        for phrase in self.phrases:
            if f" {phrase} " in joined:
                return phrase
        return None


@lru_cache(maxsize=1)
def _slur_hashes() -> frozenset[str]:
    lines = _SLUR_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


_STRETCHED = re.compile(r"(.)\1{2,}")


def _word_variants(word: str) -> set[str]:
    # "niiiice" style stretching: runs of three or more letters collapsed to one and to two.
    if not _STRETCHED.search(word):
        return {word}
    return {word, _STRETCHED.sub(r"\1", word), _STRETCHED.sub(r"\1\1", word)}


# Chat reuses its common words constantly; three hashes per word add up in a flood. 4096 words
# (about 0.7 MB) hold a stream's everyday vocabulary and fill within minutes, so memory stops
# growing early; a rare word missed costs three hashes.
@lru_cache(maxsize=4096)
def is_slur(word: str) -> bool:
    hashes = _slur_hashes()
    return any(
        hashlib.sha256((_SLUR_SALT + variant).encode()).hexdigest() in hashes for variant in _word_variants(word)
    )


def slur_in(text: str) -> bool:
    return any(map(is_slur, matching_words(text)))


_NAME_CHARS = 40  # longer names are cut: a Twitch name has at most 25 characters


def slur_inside_name(name: str) -> bool:
    """A slur anywhere inside a user name, even glued to other words ("SlurLord", "x_slur_x").

    Names have no spaces to split words on, so every stretch of the squashed name is tried (a
    few hundred cached hashes). It can flag an innocent name that contains a slur's letters; for
    a name the character would read out, that caution is the point.
    """
    letters = squash(name[:_NAME_CHARS], leet=True).lower()
    return any(
        is_slur(letters[start:end]) for start in range(len(letters)) for end in range(start + 3, len(letters) + 1)
    )


# -- links ------------------------------------------------------------------------------------


# The public suffix list (publicsuffix.org) from the snapshot bundled in tldextract: never fetched
# (no URLs to try) and never cached on disk (no cache folder), so it works offline and the same
# everywhere. Built on first use (a few tens of milliseconds); Moderator() warms it at start.
_SUFFIXES = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)


@lru_cache(maxsize=4096)  # chat repeats its few dotted words ("e.g", "lol.jk"); each costs a trie walk
def _is_domain(name: str) -> bool:
    """Whether ``name`` ends in a public suffix with a registrable name before it ("scam.icu")."""
    parts = _SUFFIXES.extract_str(name)
    return bool(parts.suffix and parts.domain)


def warm_link_rules() -> None:
    """Read the public suffix list now rather than on the first dotted chat line."""
    _is_domain("example.com")


def _link_host(match: re.Match[str]) -> str | None:
    """The host a ``_URL`` match links to, or None when it is a dotted word, not a link."""
    host = (match.group("host") or match.group("ip") or "").lower().translate(_DOTS).strip(".")
    if host:
        return host
    bare = (match.group("bare") or "").lower().translate(_DOTS)
    return bare if bare and _is_domain(bare) else None


def _link_text(text: str) -> str:
    normal = normalize_for_matching(text)
    return _OBFUSCATED_DOT.sub(r"\1.\2", normal) if _DOT_HINT.search(normal) else normal


def find_links(text: str) -> list[str]:
    """Host names of the links in ``text``, including look-alike letters and "dot" spellings."""
    link_text = _link_text(text)
    if not _LINK_HINT.search(link_text):  # most chat lines: no full _URL scan from every word
        return []
    return [host for host in map(_link_host, _URL.finditer(link_text)) if host]


def domain_allowed(host: str, allowed: Sequence[str]) -> bool:
    host = host.removeprefix("www.")
    return any(host == domain or host.endswith("." + domain) for domain in (d.lower().lstrip(".") for d in allowed))


def remove_links(text: str, allowed: Sequence[str]) -> str:
    """The text without links to domains not allowed (matched on the raw text)."""

    def keep_allowed(match: re.Match[str]) -> str:
        host = _link_host(match)
        return match.group(0) if host is None or domain_allowed(host, allowed) else ""

    return " ".join(_URL.sub(keep_allowed, text).split())


# -- spam signals -----------------------------------------------------------------------------


_ASCII_UPPER = string.ascii_uppercase.encode()
_ASCII_LOWER = string.ascii_lowercase.encode()


def caps_shouting(text: str, *, min_letters: int, ratio: float) -> bool:
    # Cased letters only (a character is upper or lower only if it has case); map() keeps the
    # per-character work in C, since every chat line passes through here.
    if text.isascii():  # bytes.translate counts ASCII letters without a call per character
        raw = text.encode()
        upper = len(raw) - len(raw.translate(None, _ASCII_UPPER))
        lower = len(raw) - len(raw.translate(None, _ASCII_LOWER))
    else:
        upper, lower = sum(map(str.isupper, text)), sum(map(str.islower, text))
    letters = upper + lower
    if letters < min_letters:
        return False
    return upper / letters >= ratio


def repeated(text: str, *, max_chars: int, max_words: int) -> bool:
    return _repeat_pattern(max_chars, max_words).search(normalize_for_matching(text)) is not None


@lru_cache(maxsize=8)
def _repeat_pattern(max_chars: int, max_words: int) -> re.Pattern[str]:
    # Normalised text has single spaces between words, so a whole word repeated is "w w w".
    return re.compile(rf"(.)\1{{{max_chars - 1},}}|(?<!\S)(\S+)(?: \2(?!\S)){{{max_words - 1}}}")


# -- output shape -----------------------------------------------------------------------------


def mass_mention(text: str, *, max_mentions: int) -> bool:
    return has_mass_mention(text) or len(_MENTION.findall(text)) > max_mentions


def defuse_mentions(text: str) -> str:
    """@everyone/@here become plain words, user mentions lose their '@' (Discord ids are removed)."""
    text = neutralise_mass_mentions(text)
    text = re.sub(r"<@[!&]?\d+>", "", text)
    return " ".join(re.sub(r"(?<![\w@])@(\w)", r"\1", text).split())
