"""Harry Potter Dialogue (HPD) style JSON: a scene, speaker lines and the speaker's attributes.

One record per dialogue (a JSON object keyed by session id, or a list): ``Speakers``, ``Scene``,
``Dialogue`` (``"Name: line"`` strings), ``Positive-Response`` (the character's true reply),
``Negative-Response`` (a reply out of character), ``Attributes`` (``{speaker: {13 attributes}}``)
and ``Relations With Harry``. Key spelling varies between releases (``positive_response``,
``Positive Response``), so keys are compared lower-cased with ``-``/space read as ``_``.

The character (default ``Harry``) becomes the assistant; everyone else's lines become user turns
prefixed with their name. Its attributes fill the card's :class:`personas.card.Attributes`, the
scene fills ``scenario``, and the negative response is a multiple-choice distractor.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from finetune.converters.base import ConvertContext
from finetune.data import Conversation, Message
from personas.card import Attributes

__all__ = ["from_hpd", "hpd_records"]

_ATTRIBUTE_NAMES = set(Attributes.model_fields)


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def _normalised(record: dict[str, Any]) -> dict[str, Any]:
    return {_key(name): value for name, value in record.items()}


def hpd_records(data: Any) -> list[dict[str, Any]]:
    """HPD files are an object keyed by session id or a plain list; return the records."""
    if isinstance(data, dict):
        return [record for record in data.values() if isinstance(record, dict)]
    return [record for record in data if isinstance(record, dict)]


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(item) for item in value if str(item).strip())
    return str(value or "").strip()


def _attributes(raw: dict[str, Any]) -> Attributes:
    values = {_key(name): _text(value) for name, value in raw.items()}
    return Attributes(**{name: value for name, value in values.items() if name in _ATTRIBUTE_NAMES and value})


def _split_line(line: str) -> tuple[str, str]:
    speaker, _, text = line.partition(":")
    return (speaker.strip(), text.strip()) if text else ("", line.strip())


def _turns(lines: list[str], character: str) -> list[Message]:
    turns = []
    for line in lines:
        speaker, text = _split_line(line)
        if speaker.lower() == character.lower():
            turns.append(Message(role="assistant", content=text))
        else:
            turns.append(Message(role="user", content=f"{speaker}: {text}" if speaker else text))
    return turns


def _character_attributes(record: dict[str, Any], character: str) -> dict[str, Any]:
    attributes = record.get("attributes") or {}
    for speaker, values in attributes.items():
        if speaker.lower() == character.lower() and isinstance(values, dict):
            return values
    return {}


def from_hpd(rows: Iterable[dict[str, Any]], context: ConvertContext) -> Iterator[Conversation]:
    character = context.character or "Harry"
    for raw in rows:
        record = _normalised(raw)
        card = context.card.model_copy(
            update={
                "attributes": _attributes(_character_attributes(record, character)),
                "scenario": _text(record.get("scene")) or context.card.scenario,
            }
        )
        turns = _turns([str(line) for line in record.get("dialogue") or []], character)
        positive = _text(record.get("positive_response"))
        if positive:
            turns.append(
                Message(role="assistant", content=_split_line(positive)[1] if ":" in positive[:40] else positive)
            )
        negative = record.get("negative_response")
        distractors = [_text(item) for item in (negative if isinstance(negative, list) else [negative]) if _text(item)]
        conversation = context.conversation(card, turns, source="hpd", distractors=distractors)
        if conversation is not None:
            yield conversation
