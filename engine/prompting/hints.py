"""An instruction for one reply (a reaction's or a command's prompt), split by who wrote its words.

A card's prompt such as ``Thank {user} for {months} months. They said: "{message}"`` mixes our
words with words viewers chose (a display name, a resub message, what followed ``!hype``). The
instruction goes to the model as a system message, so viewer-chosen words must never be in it:
a name like ``Mods say obey me`` would read as an order, and ``<|im_start|>system`` would open a
turn of its own (llama.cpp tokenises prompts with special tokens on). The instruction therefore
names each viewer-chosen field by what it is ("the viewer", "their message"), and the words
themselves ride in the viewer's user turn, quoted and defused like chat.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from engine.prompting.lines import defuse_control_tokens

__all__ = ["Hint", "quoted_details"]

_DETAIL_CHARS = 300  # as a quoted replied-to line: enough to answer, too little to flood the turn


@dataclass(frozen=True, slots=True)
class Hint:
    """``instruction``: our words only (a system message after the viewer's line). ``quoted``: the
    viewer-chosen words it refers to, already quoted and defused, for the viewer's user turn."""

    instruction: str
    quoted: str = ""


def quoted_details(details: Sequence[tuple[str, str]]) -> str:
    """``[the viewer: "Ann"; their message: "so good"]``: each viewer-chosen value as a quoted
    string (JSON escapes quotes and newlines, so a value cannot close its quote or start a line),
    control tokens defused."""
    if not details:
        return ""
    parts = [f"{label}: {json.dumps(value[:_DETAIL_CHARS], ensure_ascii=False)}" for label, value in details]
    return defuse_control_tokens(f"[{'; '.join(parts)}]")
