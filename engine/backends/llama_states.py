"""Prompt states of recent channels, parked in memory so a channel's next turn starts warm.

llama.cpp keeps one live conversation in its KV cache; a prompt that starts with the live tokens
evaluates only its new suffix. With several channels the live context keeps changing hands, so
the backend parks the leaving channel's KV state here and restores it when that channel speaks
again. One entry per channel (``GenerationRequest.conversation``): a channel's newer state
replaces its older one. Each entry remembers its adapter (KV computed under one LoRA is wrong
under another) and its tokens (what a restored state lets the next prompt skip).

The bound is in bytes, least recently parked channel first out. llama-cpp-python's own
``LlamaRAMCache`` is not used: it keys states by tokens and stores every turn as a new entry
(older turns of a busy channel then push out the only state of a quieter one), and its
``save_state`` copies the whole logits buffer with each state (n_batch × vocabulary floats:
100 MB for SmolLM2) where only the sequence's KV cells are needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ParkedState", "PrefixStates", "shared_prefix"]


def shared_prefix(first: Sequence[int], second: Sequence[int]) -> int:
    """How many leading tokens two sequences have in common."""
    shared = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        shared += 1
    return shared


@dataclass(frozen=True, slots=True)
class ParkedState:
    adapter: str | None  # the GGUF adapter the KV was computed with; None for the base model
    tokens: tuple[int, ...]
    data: bytes  # llama_state_seq_get_data of sequence 0


class PrefixStates:
    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self._entries: dict[str, ParkedState] = {}  # channel -> state, least recently parked first

    @property
    def size_bytes(self) -> int:
        return sum(len(entry.data) for entry in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def park(self, conversation: str, state: ParkedState) -> None:
        self._entries.pop(conversation, None)
        if len(state.data) > self.capacity_bytes:
            return
        self._entries[conversation] = state
        while self.size_bytes > self.capacity_bytes:
            del self._entries[next(iter(self._entries))]

    def take(self, conversation: str) -> ParkedState | None:
        """Remove and return the channel's state: the live context carries it on from here."""
        return self._entries.pop(conversation, None)
