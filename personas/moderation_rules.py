"""What the moderator can find (:class:`Reason`), what it may do about it (:class:`Action`), and
the per-persona / per-channel overrides of its settings.

A leaf module (no engine or persona imports) so persona cards and settings can both use
:class:`ModerationOverrides` without an import cycle.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "DEFAULT_ACTIONS",
    "Action",
    "ActionMap",
    "CommaList",
    "ModerationOverrides",
    "PatternList",
    "Reason",
    "check_action",
    "check_patterns",
    "parse_actions",
    "split_list",
]


class Reason(enum.StrEnum):
    """Why a line was acted on; also the ``reason`` label of the moderation counters."""

    INPUT_BANNED_WORD = "input_banned_word"
    INPUT_BANNED_PATTERN = "input_banned_pattern"
    INPUT_SLUR = "input_slur"
    INPUT_LINK = "input_link"
    INPUT_CAPS = "input_caps"
    INPUT_REPEAT = "input_repeat"
    INPUT_COPYPASTA = "input_copypasta"
    OUTPUT_BANNED_WORD = "output_banned_word"
    OUTPUT_BANNED_PATTERN = "output_banned_pattern"
    OUTPUT_SLUR = "output_slur"
    OUTPUT_LINK = "output_link"
    OUTPUT_MASS_MENTION = "output_mass_mention"
    OUTPUT_COMMAND_PREFIX = "output_command_prefix"
    OUTPUT_PROMPT_LEAK = "output_prompt_leak"

    @property
    def is_input(self) -> bool:
        return self.value.startswith("input_")


class Action(enum.StrEnum):
    """From mildest to strictest; when several rules fire, the strictest action wins.

    allow       count and log only
    fix         repair the text (strip a leading '/', defuse @everyone, cut the link) and send it
    regenerate  output only: ask the model once more; if that fails too, drop
    replace     send the configured safe line instead (input: answer it without the model)
    drop        say nothing (input: the line is stored but not answered)
    """

    ALLOW = "allow"
    FIX = "fix"
    REGENERATE = "regenerate"
    REPLACE = "replace"
    DROP = "drop"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {action: rank for rank, action in enumerate(Action)}  # declaration order, mildest first
_FIXABLE = frozenset({Reason.OUTPUT_LINK, Reason.OUTPUT_MASS_MENTION, Reason.OUTPUT_COMMAND_PREFIX})

DEFAULT_ACTIONS: dict[Reason, Action] = {
    Reason.INPUT_BANNED_WORD: Action.DROP,
    Reason.INPUT_BANNED_PATTERN: Action.DROP,
    Reason.INPUT_SLUR: Action.DROP,
    Reason.INPUT_LINK: Action.DROP,
    Reason.INPUT_CAPS: Action.DROP,
    Reason.INPUT_REPEAT: Action.DROP,
    Reason.INPUT_COPYPASTA: Action.DROP,
    Reason.OUTPUT_BANNED_WORD: Action.REGENERATE,
    Reason.OUTPUT_BANNED_PATTERN: Action.REGENERATE,
    Reason.OUTPUT_SLUR: Action.REGENERATE,
    Reason.OUTPUT_LINK: Action.REGENERATE,
    Reason.OUTPUT_MASS_MENTION: Action.FIX,
    Reason.OUTPUT_COMMAND_PREFIX: Action.FIX,
    Reason.OUTPUT_PROMPT_LEAK: Action.REGENERATE,
}


def check_action(reason: str, action: str) -> tuple[Reason, Action]:
    """Validate one ``reason=action`` pair; the error says what is allowed."""
    try:
        known_reason = Reason(reason.strip())
    except ValueError:
        raise ValueError(f"unknown moderation rule {reason!r}; rules: {', '.join(Reason)}") from None
    try:
        known_action = Action(action.strip())
    except ValueError:
        raise ValueError(f"unknown action {action!r} for {reason}; actions: {', '.join(Action)}") from None
    if known_reason.is_input and known_action in (Action.FIX, Action.REGENERATE):
        raise ValueError(f"{reason} is an input rule: use allow, replace or drop")
    if known_action is Action.FIX and known_reason not in _FIXABLE:
        raise ValueError(f"{reason} cannot be fixed; 'fix' works for {', '.join(sorted(_FIXABLE))}")
    return known_reason, known_action


def parse_actions(value: Any) -> dict[str, str]:
    """``"input_link=allow, output_link=fix"`` or a mapping → validated ``{rule: action}``."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        pairs = [item.split("=", 1) for item in value.split(",") if item.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError("write actions as rule=action pairs separated by commas, e.g. input_link=allow")
        value = dict(pairs)
    if not isinstance(value, dict):
        raise ValueError("actions must be rule=action pairs")
    checked = (check_action(str(reason), str(action)) for reason, action in value.items())
    return {reason.value: action.value for reason, action in checked}


def split_list(value: Any) -> Any:
    """Comma-separated text → list (lists pass through); used for word and domain lists."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def check_patterns(patterns: list[str]) -> list[str]:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"banned pattern {pattern!r} is not a valid regular expression: {exc}") from None
    return patterns


# Field types shared by the settings and the overrides: lists may be written comma-separated.
CommaList = Annotated[list[str], BeforeValidator(split_list)]
ActionMap = Annotated[dict[str, str], BeforeValidator(parse_actions)]
PatternList = Annotated[list[str], AfterValidator(check_patterns)]


class ModerationOverrides(BaseModel):
    """Per-persona (card field ``moderation``) or per-channel changes to the moderation settings.

    Lists add to the global ones; ``actions`` replace the global action of the rules they name.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    enabled: bool | None = Field(None, description="turn moderation off (false) or on for this persona/channel")
    banned_words: CommaList = Field(default_factory=list, description="extra words or phrases, matched on whole words")
    banned_patterns: PatternList = Field(
        default_factory=list, description="extra regular expressions (case-insensitive)"
    )
    allowed_domains: CommaList = Field(default_factory=list, description="extra link domains allowed (subdomains too)")
    actions: ActionMap = Field(default_factory=dict, description="rule → allow|fix|regenerate|replace|drop")
    safe_line: str | None = Field(None, description="what 'replace' says instead")
