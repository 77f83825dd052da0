"""Turning raw model output into a line the character can say on a platform.

Order matters: cut at stop sequences first (everything after belongs to another speaker), then
strip a leading speaker label, then apply the persona's emoji policy and length, then the
platform's limits (one line, characters, command prefixes, mass mentions), whose rules live in
:mod:`engine.output.limits`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import emoji

from engine.output.limits import PlatformLimits, as_chat_message, neutralise_mass_mentions, strip_command_prefix
from personas.card import Style

__all__ = ["SPECIAL_TOKENS", "cut_at_stops", "past_max_length", "postprocess", "shorten_to"]

SPECIAL_TOKENS = ("<|im_end|>", "<|im_start|>", "<|endoftext|>", "</s>", "<|eot_id|>", "<|end|>")
_SENTENCE_END = re.compile(r"[.!?…](?=\s|$)|\n")


def cut_at_stops(text: str, stops: Iterable[str]) -> tuple[str, bool]:
    """Text before the earliest stop sequence, and whether one was found."""
    cut = len(text)
    for stop in (*stops, *SPECIAL_TOKENS):
        if stop:
            index = text.find(stop)
            if index != -1:
                cut = min(cut, index)
    return text[:cut], cut < len(text)


def _strip_speaker(text: str, names: Iterable[str]) -> str:
    text = text.lstrip()
    for name in sorted({n for n in names if n}, key=len, reverse=True):
        pattern = re.compile(rf"^\**{re.escape(name)}\**\s*(?:\([^)]*\))?\s*:\s*", re.IGNORECASE)
        stripped = pattern.sub("", text, count=1)
        if stripped != text:
            return stripped.lstrip()
    return text


def _apply_emoji_policy(text: str, style: Style) -> str:
    if style.emoji == "keep":
        return text
    if style.emoji == "strip" or style.max_emoji == 0:
        return emoji.replace_emoji(text, replace="")
    kept = 0

    def keep_first(chars: str, _data: dict[str, Any]) -> str:
        nonlocal kept
        kept += 1
        return chars if kept <= style.max_emoji else ""

    return emoji.replace_emoji(text, replace=keep_first)


def shorten_to(text: str, limit: int) -> str:
    """At most ``limit`` characters, ending at a sentence boundary when one is reasonably close."""
    if len(text) <= limit:
        return text
    window = text[:limit]
    ends = [match.end() for match in _SENTENCE_END.finditer(window)]
    if ends and ends[-1] >= limit // 2:
        return window[: ends[-1]].rstrip()
    space = window.rfind(" ")
    cut = window[:space] if space >= limit // 2 else window[: limit - 1]
    return cut.rstrip(" ,;:-") + "…"


def _apply_platform(text: str, limits: PlatformLimits) -> str:
    text = as_chat_message(text, single_line=limits.single_line)
    if limits.neutralise_mass_mentions:
        text = neutralise_mass_mentions(text)
    if limits.forbidden_prefixes:
        text = strip_command_prefix(text, limits.forbidden_prefixes)
    if limits.max_chars is not None:
        text = shorten_to(text, limits.max_chars)
    return text


def _cleaned(raw: str, style: Style, speaker_names: Iterable[str], stops: Iterable[str]) -> str:
    text, _ = cut_at_stops(raw, stops)
    text = _strip_speaker(text, speaker_names)
    text = _apply_emoji_policy(text, style)
    return re.sub(r"[ \t]+\n", "\n", text).strip()


def past_max_length(raw: str, *, style: Style, speaker_names: Iterable[str] = (), stops: Iterable[str] = ()) -> bool:
    """Whether the reply already runs past ``style.max_reply_chars``: whatever the model adds is cut.

    :func:`shorten_to` looks only at the first ``max_reply_chars`` characters, so generating more
    only costs time (minutes on a busy CPU) for text nobody will see.
    """
    limit = style.max_reply_chars
    return len(raw) > limit and len(_cleaned(raw, style, speaker_names, stops)) > limit


def postprocess(
    raw: str,
    *,
    style: Style,
    speaker_names: Iterable[str] = (),
    stops: Iterable[str] = (),
    limits: PlatformLimits | None = None,
) -> str:
    text = shorten_to(_cleaned(raw, style, speaker_names, stops), style.max_reply_chars)
    if limits is not None:
        text = _apply_platform(text, limits)
    return text.strip()
