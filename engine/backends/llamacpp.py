"""The llama.cpp backend: any GGUF model in this process, through llama-cpp-python.

Only this module (and the GGUF token counter) imports ``llama_cpp``. Generation runs on one
worker thread, as in the transformers backend: llama.cpp parallelises each step over its own
threads (``COSTAR_BACKEND_THREADS``), and one context serves one sequence at a time.

Why it answers fast on a CPU: a prompt that starts with what the context already holds evaluates
only the new tokens (llama-cpp-python's ``generate`` keeps the matching KV prefix), and a
channel's prompt is append-only by design, so a turn evaluates the lines since the last reply.
With several channels, the KV state of the conversation leaving the context is parked
(``llama_states.PrefixStates``) and restored when its channel speaks again.

Between replies the context reads ahead (:meth:`LlamaCppBackend.read_ahead`): each chat line of the
channel it holds is evaluated as it arrives, in slices of a few tokens that give way to any reply,
so a reply evaluates little more than its own line. On a 2-core CPU prompt evaluation, not decoding,
is most of a reply's time (SmolLM2: about 130 prompt tokens/s per thread, and a busy channel adds
a few hundred tokens between two replies).

Before a channel's first line (at start, after a persona switch) the manager warms it
(:meth:`LlamaCppBackend.warm`): its system prompt is evaluated then, or loaded from disk, where each
evaluated system prompt is saved per model, adapter and rendered prompt (``llama_saved_states``),
so a restart does not evaluate it again.

The prompt is rendered with the chat template stored in the GGUF (the same Jinja renderer
llama-cpp-python's chat completion uses) and tokenised here, so the tokens the prefix match
compares are exactly the ones evaluated. At load the backend checks that the prompt builder's
token counter agrees with the GGUF's tokenizer and that the template adds no more per message than
the builder reserves, so prompt budgets stay exact.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from engine.backends.base import Backend, ChatMessage, GenerationRequest, TextStream
from engine.backends.embedded import default_cpu_threads
from engine.backends.llama_adapters import LlamaAdapters
from engine.backends.llama_saved_states import SavedStates, file_identity
from engine.backends.llama_states import ParkedState, PrefixStates, shared_prefix
from engine.backends.phrase_penalty import LogitBias, LogitsProcessor, OwnRepliesPhrasePenalty
from engine.backends.thread_stream import Emit, chunks_from_thread
from engine.errors import BackendError, SettingsError
from engine.events import Usage
from engine.prompting.tokens import TokenCounter, template_allowance

__all__ = ["LlamaCppBackend", "completion_options"]

log = logging.getLogger(__name__)
# Tokens read ahead between two checks for a waiting reply: prompt evaluation per token is nearly the
# same at 16 as at 256 on a CPU, and a reply waits at most one slice (about 0.1 s for SmolLM2).
_READ_AHEAD_SLICE = 16
# The character's replies whose words the recent-words penalty covers, and the shortest word it
# covers: "I", "the", "you" are in every reply and must stay free.
_PENALISED_REPLIES = 8
_PENALISED_WORD_LETTERS = 4
_PROBE = (
    ChatMessage("system", "You are Pip, a cheerful co-host. Keep replies short."),
    ChatMessage("user", "ann: hi Pip, how are you? 🎉"),
    ChatMessage("assistant", "Doing great, ann! Ready for the stream."),
    ChatMessage("user", "bob: what's the game today? [x2] — naïve café"),
)


def completion_options(request: GenerationRequest) -> dict[str, Any]:
    """The request's sampling as ``Llama.create_completion`` takes it (streamed)."""
    return {
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "repeat_penalty": request.repetition_penalty,
        "stop": list(request.stop),
        "seed": request.seed,
        "stream": True,
    }


@dataclass(slots=True)
class _Outcome:
    prompt_tokens: int = 0
    reused_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"


class LlamaCppBackend(Backend):
    name = "llamacpp"
    keeps_prompt_state = True

    def __init__(
        self,
        model_path: Path,
        *,
        context_tokens: int,
        threads: int | None = None,
        prefix_cache_bytes: int = 256 << 20,
        adapter_cache_dir: Path,
        counter: TokenCounter | None = None,
        saved_states_bytes: int = 0,
    ) -> None:
        self.model_path = model_path
        self.context_tokens = context_tokens
        self.threads = threads or default_cpu_threads()  # half the cores: see default_cpu_threads
        self.counter = counter
        self.states = PrefixStates(prefix_cache_bytes)
        self.adapters = LlamaAdapters(adapter_cache_dir, model_path)
        # Evaluated system prompts on disk, beside the converted adapters (0 bytes: none kept).
        self.saved_states = SavedStates(adapter_cache_dir / "llamacpp-states", saved_states_bytes, "")
        self.llm: Any = None
        self._formatter: Any = None
        self._prefix_formatter: Any = None  # the same template without the reply's opening
        self._word_tokens: dict[int, bool] = {}  # token -> whether the recent-words penalty covers it
        self._live_adapter: str | None = None  # the adapter the live KV cells were computed with
        self._live_conversation: str | None = None  # the channel whose prompt the live context holds
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="costar-llamacpp")
        self._replies_waiting = 0  # replies queued for the worker: reading ahead stops for them
        self.tokens_read_ahead = 0  # evaluated while no reply waited, over the backend's life
        self._waiting_lock = threading.Lock()
        self._closing = threading.Event()  # reading ahead stops too: shutdown must not wait for it

    # -- loading ------------------------------------------------------------------------------

    async def start(self) -> None:
        if self.llm is None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self.load)

    def load(self) -> None:
        """Load the model now (blocking); safe to call twice."""
        if self.llm is not None:
            return
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        if not self.model_path.is_file():
            raise SettingsError(f"no GGUF model at {self.model_path} (COSTAR_BACKEND_MODEL_PATH)")
        # One number for decoding and prompt evaluation (llama-cpp-python would use every core for
        # the latter): llama.cpp's threads spin-wait too, so the embedded backend's busy-machine rule holds.
        threads = self.threads
        try:
            llm = Llama(
                str(self.model_path),
                n_ctx=self.context_tokens,
                n_threads=threads,
                n_threads_batch=threads,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise SettingsError(f"llama.cpp cannot load {self.model_path}: {exc}") from exc
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise SettingsError(f"{self.model_path} carries no chat template (tokenizer.chat_template)")
        eos, bos = llm.token_eos(), llm.token_bos()
        special = {
            "eos_token": llm.detokenize([eos], special=True).decode("utf-8", "replace") if eos >= 0 else "",
            "bos_token": llm.detokenize([bos], special=True).decode("utf-8", "replace") if bos >= 0 else "",
        }
        self._formatter = Jinja2ChatFormatter(template, **special)
        self._prefix_formatter = Jinja2ChatFormatter(template, add_generation_prompt=False, **special)
        self.llm = llm
        self.adapters.attach(llm)
        self.saved_states.model_identity = file_identity(self.model_path)
        if self.counter is not None:
            self.check_counter(self.counter)
        log.info("llama.cpp model %s loaded (%d threads)", self.model_path.name, threads)

    def check_counter(self, counter: TokenCounter) -> None:
        """Refuse a token counter that would let prompts outgrow what the builder budgeted."""
        for message in _PROBE:
            ours = len(self.llm.tokenize(message.content.encode("utf-8"), add_bos=False, special=True))
            if counter.count(message.content) != ours:
                raise SettingsError(
                    f"the prompt builder's tokenizer counts {counter.count(message.content)} tokens where "
                    f"{self.model_path.name} has {ours}; unset COSTAR_BACKEND_TOKENIZER to count with the GGUF's own"
                )
        rendered, allowed = len(self.prompt_tokens(_PROBE)), template_allowance(counter, _PROBE)
        if rendered > allowed:
            raise SettingsError(
                f"{self.model_path.name}'s chat template makes {rendered} tokens of messages the prompt builder "
                f"counts as {allowed}; its per-message overhead is larger than costar reserves"
            )

    def prompt_tokens(self, messages: tuple[ChatMessage, ...], *, opening_reply: bool = True) -> list[int]:
        """The prompt exactly as evaluated: the GGUF's chat template, tokenised with its vocabulary.

        ``opening_reply=False`` leaves out what opens the assistant's turn: the start of any later
        prompt that continues these messages (what reading ahead evaluates)."""
        formatter = self._formatter if opening_reply else self._prefix_formatter
        formatted = formatter(messages=[message.as_dict() for message in messages])
        encoded = formatted.prompt.encode("utf-8")
        tokens: list[int] = self.llm.tokenize(encoded, add_bos=not formatted.added_special, special=True)
        return tokens

    async def aclose(self) -> None:
        self._closing.set()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- streaming ----------------------------------------------------------------------------

    def stream(self, request: GenerationRequest) -> TextStream:
        result = TextStream()
        return result.attach(self._chunks(request, result))

    async def _chunks(self, request: GenerationRequest, result: TextStream) -> AsyncIterator[str]:
        await self.start()

        def finished(outcome: _Outcome) -> None:
            result.usage = Usage(
                prompt_tokens=outcome.prompt_tokens,
                completion_tokens=outcome.completion_tokens,
                cached_prompt_tokens=outcome.reused_tokens,
            )
            result.finish_reason = outcome.finish_reason

        self._reply_queued(+1)  # a read-ahead slice running now ends at its next check
        generation = chunks_from_thread(
            self._executor, partial(self._generate, request), done=finished, failure="llama.cpp generation failed"
        )
        async with aclosing(generation) as chunks:
            async for chunk in chunks:
                yield chunk

    def _generate(self, request: GenerationRequest, emit: Emit, cancelled: threading.Event) -> _Outcome:
        """Runs on the generation thread."""
        self._reply_queued(-1)
        return self._generate_unsafe(request, emit, cancelled)

    def _generate_unsafe(self, request: GenerationRequest, emit: Emit, cancelled: threading.Event) -> _Outcome:
        adapter = self.adapters.gguf_for(request.adapter_path)
        tokens = self.prompt_tokens(request.messages)
        if len(tokens) + request.max_tokens > self.context_tokens and request.shorten is not None:
            request = request.shorten() or request  # the contract's one retry with older history dropped
            tokens = self.prompt_tokens(request.messages)
        if len(tokens) + request.max_tokens > self.context_tokens:
            raise BackendError(f"a prompt of {len(tokens)} tokens leaves no room for the reply in the context")
        reused = self._warm_up(request.conversation, adapter, tokens)
        reused = self._system_state(request, adapter, tokens, reused)
        outcome = _Outcome(prompt_tokens=len(tokens), reused_tokens=reused)
        completion = self.llm.create_completion(
            tokens, **completion_options(request), logits_processor=self._repetition_processors(request, len(tokens))
        )
        try:
            for chunk in completion:
                choice = chunk["choices"][0]
                if choice["text"]:
                    emit(choice["text"])
                outcome.finish_reason = choice["finish_reason"] or outcome.finish_reason
                if cancelled.is_set():
                    outcome.finish_reason = "cancelled"
                    break
        finally:
            completion.close()  # ends llama-cpp-python's generator: no token is decoded after this
        # The last token sampled is not evaluated yet, except an end-of-turn token, never evaluated.
        evaluated = max(0, self.llm.n_tokens - len(tokens))
        outcome.completion_tokens = evaluated + (outcome.finish_reason != "stop")
        return outcome

    def _own_reply_tokens(self, request: GenerationRequest) -> list[list[int]]:
        """The token ids of the character's last few replies in the prompt (its assistant turns)."""
        if request.recent_words_penalty <= 0 and request.repeated_phrase_penalty <= 0:
            return []
        replies = [message.content for message in request.messages if message.role == "assistant"]
        return [
            self.llm.tokenize(reply.encode("utf-8"), add_bos=False, special=False)
            for reply in replies[-_PENALISED_REPLIES:]
        ]

    def _recent_words_bias(self, request: GenerationRequest, own_replies: list[list[int]]) -> dict[int, float] | None:
        """``-recent_words_penalty`` for each word token of the character's last few replies.

        llama.cpp's own repeat/frequency/presence penalties only see the tokens of the reply being
        generated (its sampler accepts only sampled tokens), so they cannot stop a phrase from
        coming back reply after reply, copied from the history ("I'm honored" in 63% of replies,
        docs/finetuning.md#tics). A logit bias over the words of recent replies can."""
        if request.recent_words_penalty <= 0:
            return None
        bias = {
            token: -request.recent_words_penalty
            for reply in own_replies
            for token in reply
            if self._is_word_token(token)
        }
        return bias or None

    def _repetition_processors(self, request: GenerationRequest, prompt_tokens: int) -> list[LogitsProcessor] | None:
        """The recent-words bias and the copied-phrase penalty, as logits processors.

        Both go in one list: llama-cpp-python 0.3.36 appends a ``logit_bias`` to a given
        ``logits_processor`` with ``list.extend``, whose ``None`` then replaces both."""
        own_replies = self._own_reply_tokens(request)
        processors: list[LogitsProcessor] = []  # llama-cpp-python iterates the list it is given
        bias = self._recent_words_bias(request, own_replies)
        if bias:
            processors.append(LogitBias(bias))
        if request.repeated_phrase_penalty > 0 and own_replies:
            # A word penalty cannot tell a copied sentence from a word the question needs.
            processors.append(OwnRepliesPhrasePenalty(own_replies, prompt_tokens, request.repeated_phrase_penalty))
        return processors or None

    def _is_word_token(self, token: int) -> bool:
        if token not in self._word_tokens:
            piece = self.llm.detokenize([token]).decode("utf-8", "ignore").strip()
            self._word_tokens[token] = piece.isalpha() and len(piece) >= _PENALISED_WORD_LETTERS
        return self._word_tokens[token]

    # -- reading ahead ------------------------------------------------------------------------

    def _reply_queued(self, change: int) -> None:
        with self._waiting_lock:
            self._replies_waiting += change

    def reads_ahead(self, conversation: str | None) -> bool:
        # Only the conversation the context holds (or the first to chat into an empty one): reading
        # another channel's lines would park this one's state for a guess, and with many channels
        # every line would move a state.
        return self.llm is not None and conversation is not None and self._live_conversation in (None, conversation)

    async def read_ahead(self, request: GenerationRequest) -> None:
        if self.reads_ahead(request.conversation):
            await asyncio.get_running_loop().run_in_executor(self._executor, self._read_ahead, request, False)

    async def warm(self, request: GenerationRequest) -> None:
        await self.start()
        await asyncio.get_running_loop().run_in_executor(self._executor, self._read_ahead, request, True)

    def _read_ahead(self, request: GenerationRequest, claim: bool) -> None:
        """Evaluate the prompt prefix the channel's next reply will start with. ``claim``: even if
        another channel or adapter holds the context (warming; the live channel's state is parked)."""
        if self._replies_waiting or not (claim or self.reads_ahead(request.conversation)):
            return
        adapter = self.adapters.gguf_for(request.adapter_path)
        if not claim and self._live_conversation is not None and adapter != self._live_adapter:
            return  # the next reply resets the context for its adapter anyway
        llm = self.llm
        tokens = self.prompt_tokens(request.messages, opening_reply=False)
        if len(tokens) + request.max_tokens > self.context_tokens:
            return  # that reply will be shortened: this prefix would not be its start
        shared = self._warm_up(request.conversation, adapter, tokens)  # claims an empty context
        shared = self._system_state(request, adapter, tokens, shared)
        for start in range(shared, len(tokens), _READ_AHEAD_SLICE):
            if self._replies_waiting or self._closing.is_set():
                return
            llm.n_tokens = start  # eval() drops the cells past it and appends the slice there
            llm.eval(tokens[start : start + _READ_AHEAD_SLICE])
            self.tokens_read_ahead += len(tokens[start : start + _READ_AHEAD_SLICE])

    # -- keeping prefixes warm ----------------------------------------------------------------

    def _warm_up(self, conversation: str | None, adapter: str | None, tokens: list[int]) -> int:
        """Make the context hold the longest known prefix of ``tokens``; returns its length."""
        llm = self.llm
        same_adapter = adapter == self._live_adapter
        shared = shared_prefix(llm.input_ids[: llm.n_tokens].tolist(), tokens) if same_adapter else 0
        parked = None
        if conversation != self._live_conversation:
            parked = self.states.take(conversation) if conversation is not None else None
            self._park_live()  # another channel takes the context: keep this one's state for later
            self._live_conversation = conversation
        if not same_adapter:
            llm.reset()  # KV computed under another adapter is wrong under this one
            self.adapters.activate(adapter)
            self._live_adapter = adapter
        if parked is not None and parked.adapter == adapter:
            restored = shared_prefix(parked.tokens, tokens)
            if restored > shared:
                self._restore(parked)
                return restored
        return shared  # llama-cpp-python's generate keeps this much of the live context

    def _system_state(self, request: GenerationRequest, adapter: str | None, tokens: list[int], held: int) -> int:
        """Make the context hold at least the prompt's system message, loaded from disk if saved
        there, else evaluated now and saved; returns how many leading tokens it held before."""
        system = self._system_tokens(request, tokens)
        if held >= len(system):
            return held
        adapter_identity = file_identity(adapter)
        saved = self.saved_states.load(adapter_identity, adapter, system)
        if saved is not None:
            self._restore(saved)
            return len(system)  # not evaluated by this request: counted as cached prompt tokens
        self.llm.n_tokens = held  # eval() drops the cells past it and appends the rest there
        self.llm.eval(system[held:])
        self.saved_states.save(adapter_identity, self._snapshot(adapter))
        return held

    def _system_tokens(self, request: GenerationRequest, tokens: list[int]) -> list[int]:
        """The leading tokens of ``tokens`` that the system message alone renders to ([] if none)."""
        if self.saved_states.capacity_bytes == 0 or not request.messages or request.messages[0].role != "system":
            return []
        system = self.prompt_tokens(request.messages[:1], opening_reply=False)
        return system if tokens[: len(system)] == system else []

    def _snapshot(self, adapter: str | None) -> ParkedState:
        """The live sequence's KV cells (no logits: see llama_states), with its tokens."""
        from llama_cpp import llama_cpp as c

        llm = self.llm
        size = c.llama_state_seq_get_size(llm.ctx, 0)
        buffer = (c.ctypes.c_uint8 * size)()
        written = c.llama_state_seq_get_data(llm.ctx, buffer, size, 0)
        return ParkedState(adapter, tuple(llm.input_ids[: llm.n_tokens].tolist()), bytes(buffer[:written]))

    def _park_live(self) -> None:
        if self.llm.n_tokens == 0 or self._live_conversation is None or self.states.capacity_bytes == 0:
            return
        self.states.park(self._live_conversation, self._snapshot(self._live_adapter))

    def _restore(self, state: ParkedState) -> None:
        from llama_cpp import llama_cpp as c

        llm = self.llm
        c.llama_memory_clear(c.llama_get_memory(llm.ctx), True)
        buffer = (c.ctypes.c_uint8 * len(state.data)).from_buffer_copy(state.data)
        if c.llama_state_seq_set_data(llm.ctx, buffer, len(state.data), 0) != len(state.data):
            llm.reset()
            raise BackendError("llama.cpp could not restore a parked prompt state")
        llm.input_ids[: len(state.tokens)] = state.tokens
        llm.n_tokens = len(state.tokens)
        # The logits are not part of a sequence state: generate() must decode before it samples.
        llm._requires_eval = True
