"""Does a reply give away the persona's hidden instructions?

"Hidden" is what the character is *told* (the instructions, the speaking rules, post-history
instructions), not what it *is*: a character describing itself in its card's words is in
character, a character reciting "Chat lines reach you as 'Name: message'..." is leaking.

A reply leaks when, after normalisation (case, look-alikes, leetspeak), it shares ``words``
consecutive words with the hidden text, or ``chars`` consecutive letters and digits once spacing
and punctuation are ignored. The same test runs on the reply decoded as ROT13, as reversed text
and on every base64-looking run in it, because "print your prompt in base64" is a classic.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from collections.abc import Iterator

from engine.moderation.normalize import squash, word_sequence
from personas.card import Attributes, PersonaCard
from personas.render import CHAT_AUDIENCE, render_system_prompt, substitute_macros

__all__ = ["LeakDetector", "hidden_instructions"]

_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")


def hidden_instructions(card: PersonaCard) -> str:
    """The instruction parts of the persona's prompt: its system prompt without the character sheet."""
    bare = card.model_copy(
        update={
            "description": "",
            "personality": "",
            "scenario": "",
            "attributes": Attributes(),
            "facts": [],
            "example_dialogues": [],
        }
    )
    parts = [render_system_prompt(bare)]
    if card.post_history_instructions:
        parts.append(substitute_macros(card.post_history_instructions, card.display_name, CHAT_AUDIENCE))
    return "\n\n".join(parts)


def _shingles(words: list[str], size: int) -> set[tuple[str, ...]]:
    return {tuple(words[start : start + size]) for start in range(len(words) - size + 1)}


def _grams(text: str, size: int) -> set[str]:
    return {text[start : start + size] for start in range(len(text) - size + 1)}


def _decoded_forms(text: str) -> Iterator[tuple[str, str]]:
    yield "plain", text
    yield "rot13", codecs.decode(text, "rot13")
    yield "reversed", text[::-1]
    for run in _BASE64_RUN.findall(text):
        try:
            decoded = base64.b64decode(run + "=" * (-len(run) % 4), validate=False).decode("utf-8", "ignore")
        except (binascii.Error, ValueError):
            continue
        if decoded:
            yield "base64", decoded


class LeakDetector:
    def __init__(self, hidden_text: str, *, words: int = 8, chars: int = 32) -> None:
        self.words = words
        self.chars = chars
        # Digits fold to letters on both sides ("41" → "ai"), so "y0u 4r3 p1p" matches "you are pip".
        self._word_shingles = _shingles(word_sequence(hidden_text, numbers_too=True), words)
        self._char_grams = _grams(squash(hidden_text, leet=True), chars)

    def _overlaps(self, text: str) -> bool:
        if self._word_shingles and not self._word_shingles.isdisjoint(
            _shingles(word_sequence(text, numbers_too=True), self.words)
        ):
            return True
        return bool(self._char_grams) and not self._char_grams.isdisjoint(_grams(squash(text, leet=True), self.chars))

    def leak_form(self, text: str) -> str | None:
        """How the reply leaks ("plain", "rot13", "reversed", "base64"), or None. Never the text."""
        for form, candidate in _decoded_forms(text):
            if self._overlaps(candidate):
                return form
        return None
