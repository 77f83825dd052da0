"""Converters from public dialogue datasets and chat logs to costar's conversational JSONL.

Each converter takes rows (dicts, as ``datasets`` or a local file yields them) and a
:class:`ConvertContext` (the persona card to render the system turn from) and yields
:class:`finetune.data.Conversation` objects with the character as the assistant.

================  ==========================================================================
name              source
================  ==========================================================================
personachat       Cynaptics/persona-chat: ``persona_b`` facts, ``dialogue`` lines, ``reference``
personachat_tc    bavard/personachat_truecased: ``personality``, ``history``, ``candidates``
hpd               Harry Potter Dialogue JSON: ``Dialogue``, ``Attributes`` → the card
wow               Wizard of Wikipedia (ParlAI JSON): the knowledge goes into the system turn
chatlog           chat logs as CSV/JSONL rows: ``author``, ``text``, ``is_character``
memory_db         costar's own SQLite memory database, one persona's channels
jsonl             costar's conversational JSONL (re-rendered with the card)
================  ==========================================================================
"""

from __future__ import annotations

from finetune.converters.base import ConvertContext, Converter
from finetune.converters.registry import CONVERTERS, convert, load_rows

__all__ = ["CONVERTERS", "ConvertContext", "Converter", "convert", "load_rows"]
