"""costar's conversational JSONL: one conversation per line, the character always the assistant.

    {"messages": [{"role": "system", "content": "<the persona card, rendered>"},
                  {"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}, ...],
     "persona": "pip", "distractors": ["replies other characters gave to the last line"]}

``distractors`` is optional and only used by the multiple-choice persona test. The shipped Pip
set (``finetune/data/pip_*.jsonl``) leaves the system turn out: it is rendered from the current
card when loaded (:func:`with_system_prompt`), so training always sees the prompt serving uses.
A set with many characters (``finetune/data/persona``) names each line's card instead:
``"card": "cards/gruk.yaml"``, relative to the JSONL file; that card is rendered into its system turn.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from finetune.errors import DataError

__all__ = [
    "SHIPPED_DATA_DIR",
    "Conversation",
    "Message",
    "count_turns",
    "read_jsonl",
    "shipped_split",
    "with_system_prompt",
    "write_jsonl",
]

SHIPPED_DATA_DIR = Path(__file__).parent / "data"


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


class Conversation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[Message] = Field(min_length=1)
    persona: str = Field(min_length=1, description="the persona id the assistant speaks as")
    distractors: list[str] = Field(default_factory=list, description="other characters' replies to the last line")
    source: str | None = Field(None, description="where the conversation came from (converter name, file)")
    card: str | None = Field(
        None,
        description="this conversation's own persona card, relative to the data file; rendered into the "
        "system turn when loaded (finetune.persona.with_card_prompts), instead of the one --card",
    )

    @field_validator("messages")
    @classmethod
    def _system_only_first(cls, messages: list[Message]) -> list[Message]:
        if any(message.role == "system" for message in messages[1:]):
            raise ValueError("a system turn may only come first")
        return messages

    @model_validator(mode="after")
    def _has_character_turn(self) -> Conversation:
        if not any(message.role == "assistant" for message in self.messages):
            raise ValueError("needs at least one assistant (character) turn")
        return self

    @property
    def system_prompt(self) -> str | None:
        first = self.messages[0]
        return first.content if first.role == "system" else None

    @property
    def turns(self) -> list[Message]:
        """The dialogue without the system turn."""
        return [message for message in self.messages if message.role != "system"]

    def chat(self) -> list[dict[str, str]]:
        """The messages as plain dicts, the shape chat templates and trl take."""
        return [message.model_dump() for message in self.messages]


def with_system_prompt(conversation: Conversation, system_prompt: str) -> Conversation:
    """Return the conversation with its system turn replaced by (or starting with) ``system_prompt``."""
    messages = [Message(role="system", content=system_prompt), *conversation.turns]
    return conversation.model_copy(update={"messages": messages})


def read_jsonl(path: Path | str) -> list[Conversation]:
    """Read and validate a conversational JSONL file; errors name the file and line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(path, f"cannot read: {exc.strerror or exc}") from exc
    conversations = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            conversations.append(Conversation.model_validate(json.loads(line)))
        except json.JSONDecodeError as exc:
            raise DataError(path, f"not JSON: {exc.msg}", line=number) from exc
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "line"
            raise DataError(path, f"{field}: {first['msg']}", line=number) from exc
    if not conversations:
        raise DataError(path, "holds no conversations")
    return conversations


def write_jsonl(conversations: Iterable[Conversation], path: Path | str) -> int:
    """Write conversations one per line (UTF-8, no ASCII escaping); returns how many."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for conversation in conversations:
            out.write(conversation.model_dump_json(exclude_defaults=True) + "\n")
            count += 1
    return count


def shipped_split(split: Literal["train", "valid", "heldout"], persona: str = "pip") -> Path:
    """Path of a shipped dialogue split, e.g. ``finetune/data/pip_train.jsonl``.

    ``valid`` is for choosing during training (eval loss, the best checkpoint); ``heldout`` is
    the test set that :mod:`finetune.evaluate` reports on, and nothing is chosen by it.
    """
    return SHIPPED_DATA_DIR / f"{persona}_{split}.jsonl"


def count_turns(conversations: Iterable[Conversation]) -> dict[str, int]:
    counts = {"conversations": 0, "user": 0, "assistant": 0}
    for conversation in conversations:
        counts["conversations"] += 1
        for message in conversation.turns:
            counts[message.role] += 1
    return counts
