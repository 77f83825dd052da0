"""The one backend contract: a request in, an async stream of text chunks out.

Usage numbers arrive on the stream object once it is exhausted (like the OpenAI client's
streams), so the contract stays "async iterator of str" for every caller.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from engine.events import ChatMessage, MessageRole, Usage

# ChatMessage lives in engine.events (prompting builds them without reaching up into backends);
# it is named here too, where every backend reads it.
__all__ = ["Backend", "ChatMessage", "GenerationRequest", "MessageRole", "TextStream"]


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """Everything a backend needs for one reply.

    ``model`` is the name the server knows the persona by (its LoRA adapter name, or the base
    model); ``adapter_path`` lets the embedded backend load the same adapter from disk.
    """

    messages: tuple[ChatMessage, ...]
    max_tokens: int
    temperature: float = 0.7
    top_p: float = 0.95
    repetition_penalty: float = 1.0  # 1 = none; the persona's style.repetition_penalty
    recent_words_penalty: float = 0.0  # llama.cpp: the persona's style.recent_words_penalty
    repeated_phrase_penalty: float = 0.0  # llama.cpp: the persona's style.repeated_phrase_penalty
    stop: tuple[str, ...] = ()
    model: str | None = None
    adapter_path: str | None = None
    seed: int | None = None
    # Which conversation (channel) the prompt continues: a local backend keeps each one's prompt
    # state warm between turns. Servers with their own prefix cache (vLLM) need no hint.
    conversation: str | None = None
    # Lets a backend that hits "context too long" ask for a shorter prompt and retry once.
    shorten: Callable[[], GenerationRequest | None] | None = field(default=None, compare=False)


class TextStream:
    """An async iterator of text chunks; ``usage`` and ``finish_reason`` are set once it ends."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self._chunks: AsyncIterator[str] | None = None

    def attach(self, chunks: AsyncIterator[str]) -> TextStream:
        self._chunks = chunks
        return self

    def __aiter__(self) -> AsyncIterator[str]:
        if self._chunks is None:
            raise RuntimeError("TextStream used before a backend attached its chunks")
        return self._chunks

    async def aclose(self) -> None:
        closer = getattr(self._chunks, "aclose", None)
        if closer is not None:
            await closer()

    async def text(self) -> str:
        """Drain the stream and return the whole text."""
        return "".join([chunk async for chunk in self])


class Backend(abc.ABC):
    """Implement :meth:`stream`; everything else has a sensible default."""

    name: str = "backend"

    @abc.abstractmethod
    def stream(self, request: GenerationRequest) -> TextStream:
        """Start generating; iterate the result for text chunks. Raises BackendError subclasses."""

    async def start(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Load models or check the server; called once before the first request."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Release models, sessions and threads."""

    # A backend that keeps evaluated prompts itself (llama.cpp) wants channels warmed (:meth:`warm`).
    keeps_prompt_state: bool = False

    def reads_ahead(self, conversation: str | None) -> bool:
        """Whether :meth:`read_ahead` would use a prompt of ``conversation`` now; callers build
        none otherwise (servers with their own prefix cache never want one)."""
        return False

    async def read_ahead(self, request: GenerationRequest) -> None:  # noqa: B027 - optional hook
        """The conversation's next prompt will start with ``request.messages``: a backend that keeps
        prompt state may evaluate them now, while nobody waits, and must give way to any reply."""

    async def warm(self, request: GenerationRequest) -> None:  # noqa: B027 - optional hook
        """Like :meth:`read_ahead`, but before a channel's first line (at start, after a persona
        switch): the prompt start takes the backend's context even from another conversation."""

    async def complete(self, request: GenerationRequest) -> str:
        return await self.stream(request).text()
