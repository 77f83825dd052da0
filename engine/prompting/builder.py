"""Prompt layout for prefix caching: stable things first, history append-only, trimmed in big steps.

    [system]    persona system prompt (byte-identical every turn) + stable channel memory
    [history]   chat lines since the channel's window start, oldest first, one message each
    [system]    this turn's context: fired lore, what the character knows about the speaker
    [user]      the new line

Serving engines cache by exact leading tokens (docs/serving.md), so between two turns of a channel the
only change before the context block is what was appended. When history outgrows its budget the
window start jumps forward far enough (to ``trim_to`` of the budget) that trims stay rare, and a
rolling summary of what was dropped becomes the new stable memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.events import ChatMessage
from engine.prompting.lines import viewer_line
from engine.prompting.tokens import GENERATION_PROMPT_TOKENS, MESSAGE_OVERHEAD_TOKENS, TokenCounter, template_allowance
from memory.records import StoredMessage

__all__ = [
    "BuiltPrompt",
    "PromptBuilder",
    "PromptInputs",
    "render_history_line",
    "said_by_another_persona",
    "viewer_message",
]


def viewer_message(
    author_name: str, text: str, replying_to: tuple[str, str] | None = None, remembered: str | None = None
) -> ChatMessage:
    """A viewer's line as the model sees it: always a user message, labelled with the author.

    A quoted replied-to line and the block of what the character remembers (notes, recalled
    lines) are viewer text too, so they ride in this user message rather than in any system
    message; the remembered block goes first, the new line last, where the model answers it.
    """
    line = viewer_line(author_name, text, replying_to)
    return ChatMessage("user", f"{remembered}\n{line}" if remembered else line)


def said_by_another_persona(line: StoredMessage, persona_id: str | None) -> bool:
    """A line the channel's previous character said, before a /persona switch."""
    return line.is_character and persona_id is not None and line.persona_id not in (None, persona_id)


def render_history_line(line: StoredMessage) -> ChatMessage:
    """The character's own earlier lines are its turns; a viewer's are labelled user lines."""
    if line.is_character:
        return ChatMessage("assistant", line.text)
    return viewer_message(line.author_name, line.text)


@dataclass(frozen=True, slots=True)
class PromptInputs:
    system_prompt: str
    stable_memory: str | None
    history: Sequence[StoredMessage]  # after the window start, oldest first, the new line excluded
    turn_context: Sequence[str]  # most important first; dropped from the end when space is short
    new_line: ChatMessage
    window_start_id: int  # id of the oldest line the window may include
    persona_id: str | None = None  # who answers: another persona's earlier lines are left out


@dataclass(frozen=True, slots=True)
class BuiltPrompt:
    messages: tuple[ChatMessage, ...]
    prompt_tokens: int
    window_start_id: int
    trimmed: bool
    dropped: tuple[StoredMessage, ...]


class PromptBuilder:
    def __init__(self, counter: TokenCounter, *, context_tokens: int, trim_to: float = 0.5) -> None:
        self.counter = counter
        self.context_tokens = context_tokens
        self.trim_to = trim_to

    def tokens_of(self, message: ChatMessage) -> int:
        return self.counter.count(message.content) + MESSAGE_OVERHEAD_TOKENS

    def _truncate(self, text: str, max_tokens: int) -> str:
        if self.counter.count(text) <= max_tokens:
            return text
        # Shrink by characters until it fits; counts are cached so this stays cheap.
        low, high = 0, len(text)
        while low < high:
            middle = (low + high + 1) // 2
            if self.counter.count(text[:middle] + "…") <= max_tokens:
                low = middle
            else:
                high = middle - 1
        return text[:low] + "…"

    def build(self, inputs: PromptInputs, *, reply_tokens: int, reserve_tokens: int = 0) -> BuiltPrompt:
        """``reserve_tokens``: room history leaves free for a turn's context and line not known yet."""
        budget = self.context_tokens - reply_tokens - GENERATION_PROMPT_TOKENS
        if budget < 4 * MESSAGE_OVERHEAD_TOKENS:
            raise ValueError(f"reply_tokens={reply_tokens} leaves no room in a {self.context_tokens}-token context")
        system = self._system_message(inputs, budget)
        new_line = self._fit_new_line(inputs.new_line, budget // 4)
        fixed = self.tokens_of(system) + self.tokens_of(new_line) + reserve_tokens
        context = self._fit_context(inputs.turn_context, budget - fixed)
        fixed += self.tokens_of(context) if context else 0
        history, start_id, dropped = self._fit_history(inputs, budget - fixed)
        messages = (system, *history, *((context,) if context else ()), new_line)
        total = template_allowance(self.counter, messages)
        return BuiltPrompt(messages, total, start_id, bool(dropped), tuple(dropped))

    def _system_message(self, inputs: PromptInputs, budget: int) -> ChatMessage:
        # The persona prompt gets at most half the budget and memory a tenth: the chat needs room.
        system = self._truncate(inputs.system_prompt, budget // 2 - MESSAGE_OVERHEAD_TOKENS)
        if inputs.stable_memory:
            memory = self._truncate(inputs.stable_memory, budget // 10)
            system = f"{system}\n\n{memory}"
        return ChatMessage("system", system)

    def _fit_new_line(self, line: ChatMessage, max_tokens: int) -> ChatMessage:
        content = self._truncate(line.content, max_tokens - MESSAGE_OVERHEAD_TOKENS)
        return line if content == line.content else ChatMessage(line.role, content)

    def _fit_context(self, parts: Sequence[str], room: int) -> ChatMessage | None:
        # Context may use at most half of what is left (lore is bounded by its book's own
        # token_budget too), so history always keeps the other half.
        allowance = max(0, room // 2 - MESSAGE_OVERHEAD_TOKENS)
        chosen: list[str] = []
        for part in parts:
            if self.counter.count("\n\n".join([*chosen, part])) <= allowance:
                chosen.append(part)
        return ChatMessage("system", "\n\n".join(chosen)) if chosen else None

    def _fit_history(self, inputs: PromptInputs, room: int) -> tuple[list[ChatMessage], int, list[StoredMessage]]:
        # The previous character's lines are left out. Shown as the new character's own turns they
        # were copied outright ("I'm Captain Brine"); shown even as another speaker's labelled lines,
        # a 135M model still answered "who are you?" with the old character's self-introduction
        # (bench/persona_bleed.py, docs/personas.md#switching-personas). The summary says who hosted.
        lines = [line for line in inputs.history if not said_by_another_persona(line, inputs.persona_id)]
        rendered = [render_history_line(line) for line in lines]
        costs = [self.tokens_of(message) for message in rendered]
        if sum(costs) <= room:
            return rendered, inputs.window_start_id, []
        # Overflow: keep only the newest lines that fit in trim_to of the room, so the next
        # several turns append without another trim (each trim invalidates the cached prefix).
        target, kept_cost, start = self.trim_to * room, 0, len(lines)
        while start > 0 and kept_cost + costs[start - 1] <= target:
            start -= 1
            kept_cost += costs[start]
        new_start_id = (
            lines[start].id if start < len(lines) else (lines[-1].id + 1 if lines else inputs.window_start_id)
        )
        return rendered[start:], new_start_id, lines[:start]
