"""Wizard of Wikipedia (ParlAI JSON): the wizard is the character, its knowledge goes in the system turn.

A dialogue: ``chosen_topic``, ``persona`` (the apprentice's), ``dialog`` (turns with ``speaker``
``"0_Wizard"``/``"1_Apprentice"``, ``text``, ``checked_sentence`` ``{key: sentence}``,
``retrieved_passages``) and ``chosen_topic_passage``. The sentences the wizard actually checked
(else the first sentences of the topic passage) are appended to the rendered card as a
``Knowledge`` block, the way a lorebook entry reaches the prompt at serving time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from finetune.converters.base import ConvertContext
from finetune.data import Conversation, Message

__all__ = ["from_wow", "knowledge_block"]

_NO_KNOWLEDGE = "no_passages_used"
_MAX_SENTENCES = 6


def _checked_sentences(dialog: list[dict[str, Any]]) -> list[str]:
    sentences: list[str] = []
    for turn in dialog:
        for sentence in (turn.get("checked_sentence") or {}).values():
            if sentence and sentence != _NO_KNOWLEDGE and sentence not in sentences:
                sentences.append(sentence)
    return sentences


def knowledge_block(record: dict[str, Any]) -> str:
    sentences = _checked_sentences(record.get("dialog") or [])
    if not sentences:
        sentences = [str(sentence) for sentence in record.get("chosen_topic_passage") or []]
    topic = str(record.get("chosen_topic") or "").strip()
    lines = [f"Topic: {topic}"] if topic else []
    lines += ["Knowledge:", *(f"- {sentence}" for sentence in sentences[:_MAX_SENTENCES])] if sentences else []
    return "\n".join(lines)


def from_wow(rows: Iterable[dict[str, Any]], context: ConvertContext) -> Iterator[Conversation]:
    for record in rows:
        dialog = record.get("dialog") or []
        turns = [
            Message(
                role="assistant" if "wizard" in str(turn.get("speaker", "")).lower() else "user",
                content=str(turn.get("text", "")),
            )
            for turn in dialog
        ]
        conversation = context.conversation(context.card, turns, source="wow")
        if conversation is None:
            continue
        knowledge = knowledge_block(record)
        if knowledge:
            system = conversation.messages[0].model_copy(
                update={"content": f"{conversation.messages[0].content}\n\n{knowledge}"}
            )
            conversation = conversation.model_copy(update={"messages": [system, *conversation.messages[1:]]})
        yield conversation
