"""persona-chat in its two common Hub shapes; the fact-holding speaker is the character.

- ``Cynaptics/persona-chat``: one row per conversation, ``persona_b`` (list of Persona B's
  first-person facts), ``dialogue`` (list of ``"Persona A: …"`` / ``"Persona B: …"`` lines) and
  ``reference`` (Persona B's next reply). Persona B is the character.
- ``bavard/personachat_truecased``: one row per utterance, ``personality`` (the facts),
  ``history`` (the turns so far, the other speaker's line last), ``candidates`` (19 random replies
  then the true one, last), ``conv_id``, ``utterance_idx``. The longest row of each ``conv_id``
  holds the whole conversation; its wrong candidates become multiple-choice distractors.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from finetune.converters.base import ConvertContext
from finetune.data import Conversation, Message

__all__ = ["from_cynaptics", "from_truecased"]

_SPEAKER = re.compile(r"^\s*(Persona [AB])\s*:\s*(.*)$", re.DOTALL)
_SILENCE = "__ SILENCE __"


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [line for line in value.splitlines() if line.strip()]
    return [str(item) for item in value]


def _dialogue_turns(lines: list[str]) -> list[Message]:
    turns = []
    for line in lines:
        match = _SPEAKER.match(line)
        if match is None:
            continue  # stray lines without a speaker carry no role we could trust
        role = "assistant" if match.group(1) == "Persona B" else "user"
        turns.append(Message(role=role, content=match.group(2)))
    return turns


def from_cynaptics(rows: Iterable[dict[str, Any]], context: ConvertContext) -> Iterator[Conversation]:
    for row in rows:
        card = context.card.model_copy(update={"facts": _as_list(row.get("persona_b"))})
        turns = _dialogue_turns(_as_list(row.get("dialogue")))
        reference = str(row.get("reference") or "").strip()
        if reference and (not turns or turns[-1].role == "user"):
            turns.append(Message(role="assistant", content=reference.removeprefix("Persona B:").strip()))
        conversation = context.conversation(card, turns, source="personachat")
        if conversation is not None:
            yield conversation


def _longest_per_conversation(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    longest: dict[Any, dict[str, Any]] = {}
    for position, row in enumerate(rows):
        key = row.get("conv_id", f"row-{position}")
        if key not in longest or len(_as_list(row.get("history"))) >= len(_as_list(longest[key].get("history"))):
            longest[key] = row
    return list(longest.values())


def _history_turns(history: list[str], reply: str) -> list[Message]:
    # The other speaker's line is always last in `history`; roles alternate backwards from it.
    lines = [line for line in history if line.strip() != _SILENCE]
    turns = [
        Message(role="user" if (len(lines) - index) % 2 == 1 else "assistant", content=line)
        for index, line in enumerate(lines)
    ]
    return [*turns, Message(role="assistant", content=reply)]


def from_truecased(rows: Iterable[dict[str, Any]], context: ConvertContext) -> Iterator[Conversation]:
    for row in _longest_per_conversation(rows):
        candidates = _as_list(row.get("candidates"))
        if not candidates:
            continue
        card = context.card.model_copy(update={"facts": _as_list(row.get("personality"))})
        turns = _history_turns(_as_list(row.get("history")), candidates[-1])
        distractors = candidates[:-1][-3:]
        conversation = context.conversation(card, turns, source="personachat_truecased", distractors=distractors)
        if conversation is not None:
            yield conversation
