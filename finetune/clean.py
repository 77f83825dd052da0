"""Cleaning dialogue data before training: emoji, personal data, duplicates, lengths.

Emoji follow the Yothalia project: removed by default (a 135M model spends capacity on them and
platforms render them inconsistently), or turned into ``:shortcode:`` text, or kept. E-mail
addresses and phone numbers are replaced by ``[email]`` / ``[phone]`` so chat logs never teach
the model someone's contact details.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import emoji

from finetune.data import Conversation, Message

__all__ = ["CleanOptions", "CleanReport", "clean_conversations", "normalise_emoji", "scrub_personal_data"]

EmojiPolicy = Literal["strip", "demojize", "keep"]

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# International or local numbers with at least 7 digits, separated by spaces, dots, dashes or brackets.
_PHONE = re.compile(r"(?<![\w/])\+?\d[\d ().-]{5,}\d(?![\w/])")
_SPACES = re.compile(r"[ \t]{2,}")


def normalise_emoji(text: str, policy: EmojiPolicy = "strip") -> str:
    if policy == "keep":
        return text
    if policy == "demojize":
        return emoji.demojize(text)
    return _SPACES.sub(" ", emoji.replace_emoji(text, replace="")).strip()


def _looks_like_phone(candidate: str) -> bool:
    digits = sum(char.isdigit() for char in candidate)
    return 7 <= digits <= 15


def scrub_personal_data(text: str) -> str:
    text = _EMAIL.sub("[email]", text)
    return _PHONE.sub(lambda match: "[phone]" if _looks_like_phone(match.group()) else match.group(), text)


@dataclass(frozen=True, slots=True)
class CleanOptions:
    emoji_policy: EmojiPolicy = "strip"
    scrub_personal_data: bool = True
    min_reply_chars: int = 2
    max_turn_chars: int = 1000
    max_turns: int = 40
    deduplicate: bool = True


@dataclass(slots=True)
class CleanReport:
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    scrubbed_turns: int = 0

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def summary(self) -> str:
        dropped = ", ".join(f"{count} {reason}" for reason, count in sorted(self.dropped.items())) or "none"
        return f"kept {self.kept} conversations; dropped: {dropped}; turns scrubbed of personal data: {self.scrubbed_turns}"


def _clean_text(text: str, options: CleanOptions, report: CleanReport) -> str:
    cleaned = normalise_emoji(text, options.emoji_policy)
    if options.scrub_personal_data:
        scrubbed = scrub_personal_data(cleaned)
        if scrubbed != cleaned:
            report.scrubbed_turns += 1
        cleaned = scrubbed
    return cleaned.strip()


def _clean_turns(conversation: Conversation, options: CleanOptions, report: CleanReport) -> list[Message] | None:
    """Clean every turn; None (with the reason recorded) when the conversation must go."""
    turns: list[Message] = []
    for message in conversation.messages:
        if message.role == "system":
            turns.append(message)  # the rendered card is ours: never rewritten
            continue
        text = _clean_text(message.content, options, report)
        if len(text) > options.max_turn_chars:
            report.drop("with a turn too long")
            return None
        if message.role == "assistant" and len(text) < options.min_reply_chars:
            report.drop("with a reply too short")
            return None
        if text:
            turns.append(Message(role=message.role, content=text))
    if not any(turn.role == "assistant" for turn in turns):
        report.drop("without a character turn")
        return None
    if sum(turn.role != "system" for turn in turns) > options.max_turns:
        report.drop("with too many turns")
        return None
    return turns


def _fingerprint(messages: list[Message]) -> str:
    # System prompts differ only by card version; duplicates are about what was said.
    said = "\n".join(f"{m.role}:{' '.join(m.content.lower().split())}" for m in messages if m.role != "system")
    return hashlib.sha1(said.encode("utf-8")).hexdigest()


def clean_conversations(
    conversations: Iterable[Conversation], options: CleanOptions | None = None
) -> tuple[list[Conversation], CleanReport]:
    options = options or CleanOptions()
    report = CleanReport()
    seen: set[str] = set()
    kept: list[Conversation] = []
    for conversation in conversations:
        turns = _clean_turns(conversation, options, report)
        if turns is None:
            continue
        if options.deduplicate:
            fingerprint = _fingerprint(turns)
            if fingerprint in seen:
                report.drop("duplicates")
                continue
            seen.add(fingerprint)
        distractors = [_clean_text(text, options, report) for text in conversation.distractors]
        kept.append(conversation.model_copy(update={"messages": turns, "distractors": distractors}))
    report.kept = len(kept)
    return kept, report
