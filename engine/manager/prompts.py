"""Each channel's prompt: its history window, what the model may see of it, trims and summaries.

The window of a channel's history moves only when it overflows (by count or by tokens): what was
dropped is summarised into the stable part of the prompt and the window starts after it, so the
prompt stays append-only between trims and a server's prefix cache (or llama.cpp's kept state)
reuses it. Reading ahead builds the same window a reply would, before anyone waits for it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from engine.backends.base import ChatMessage, GenerationRequest
from engine.backends.read_ahead import ChannelLike
from engine.base.recent import RecentlyUsed
from engine.events import ChatEvent
from engine.manager.turns import ChannelTurn
from engine.moderation.moderator import Moderator
from engine.prompting.builder import BuiltPrompt, PromptBuilder, PromptInputs, viewer_message
from engine.prompting.lines import viewer_line
from engine.prompting.turn_context import build_turn_context, summarise_dropped
from engine.recall.recaller import Recaller
from engine.recall.reflection import Reflector
from engine.serving.adapter_paths import adapter_folder
from engine.serving.model_names import served_model_name
from engine.settings import Settings
from memory import MemoryStore, RecalledLine, StoredMessage
from personas.card import PersonaCard
from personas.registry import PersonaRegistry

__all__ = ["PromptWindows"]

# Per-line "may the model see it" verdicts (about 150 bytes each): enough for a dozen full prompt
# windows (history_lines); a miss only re-runs the cheap, cached moderation check.
_REMEMBERED_LINES = 4096
# Reading ahead trims a window early when less than this share of the context would be left for
# the next turn's context block and line (an eighth: 256 tokens of a 2048-token context).
_TURN_RESERVE_SHARE = 8


class PromptWindows:
    """Builds each reply's prompt (:meth:`build`) and the prefix reading ahead evaluates."""

    def __init__(
        self,
        *,
        settings: Settings,
        memory: MemoryStore,
        builder: PromptBuilder,
        recaller: Recaller,
        moderator: Moderator,
        reflector: Reflector | None,
        personas: PersonaRegistry,
        turns: RecentlyUsed[str, ChannelTurn],
        persona_for: Callable[[str, str, str | None], Awaitable[PersonaCard]],
        system_prompt: Callable[[PersonaCard], str],
    ) -> None:
        self.settings = settings
        self.memory = memory
        self.builder = builder
        self.recaller = recaller
        self.moderator = moderator
        self.reflector = reflector
        self._personas = personas
        self._turns = turns
        self._persona_for = persona_for
        self._system_prompt = system_prompt
        self._window_start: RecentlyUsed[str, int] = RecentlyUsed(settings.core.channels_kept)
        # Whether a stored line may be shown to the model, per persona: history is mostly the
        # same lines turn after turn, so each is judged once, not once per reply.
        self._shown: OrderedDict[tuple[str, int], bool] = OrderedDict()

    def windows_held(self) -> int:
        """Channels whose window start is remembered (bounded by COSTAR_CHANNELS_KEPT)."""
        return len(self._window_start)

    def shown_fill(self) -> tuple[int, int]:
        """(entries, capacity) of the per-line "may the model see it" verdicts."""
        return len(self._shown), _REMEMBERED_LINES

    async def build(self, event: ChatEvent, persona: PersonaCard) -> BuiltPrompt:
        key = event.channel_key
        window_start = self._window_start.get(key) or 0
        history = [
            line for line in await self._history_before(event, window_start) if self.shown_to_model(line, persona)
        ]
        history, window_start = await self._trim_by_count(event, persona, history, window_start)
        user = await self.memory.get_user(event.platform, event.author_id)
        summary = await self.memory.latest_summary(event.platform, event.channel_id)
        replied_to = await self._replied_line(event, history, persona)
        # Recalled from before the window only: what the model already sees needs no reminder.
        remembered = await self.recaller.block_for(
            event,
            persona,
            before_id=history[0].id if history else window_start,
            shown=self.shown_to_model,
            quoted=replied_to[1] if replied_to else None,
        )
        inputs = PromptInputs(
            system_prompt=self._system_prompt(persona),
            stable_memory=summary.text if summary else None,
            history=history,
            turn_context=build_turn_context(persona, event, user, history, self.builder.counter.count),
            new_line=viewer_message(event.author_name, event.text, replied_to, remembered),
            window_start_id=window_start,
            persona_id=persona.persona_id,
        )
        return await self._build_in_window(event, persona, inputs)

    async def _trim_by_count(
        self, event: ChannelLike, persona: PersonaCard, history: list[StoredMessage], window_start: int
    ) -> tuple[list[StoredMessage], int]:
        """Too many lines even if they fit: trimmed by count, by the same rule as by tokens."""
        history_lines = self.settings.prompt.history_lines
        if len(history) <= history_lines:
            return history, window_start
        keep = max(1, int(history_lines * self.settings.prompt.trim_to))
        await self._remember_trim(event, persona, history[:-keep])
        return history[-keep:], history[-keep].id

    async def _build_in_window(
        self, event: ChannelLike, persona: PersonaCard, inputs: PromptInputs, *, reserve_tokens: int = 0
    ) -> BuiltPrompt:
        """Build; when history overflows, trim it, summarise what was dropped and move the window."""
        reply_tokens = persona.style.max_reply_tokens
        built = self.builder.build(inputs, reply_tokens=reply_tokens, reserve_tokens=reserve_tokens)
        if built.trimmed:
            await self._remember_trim(event, persona, list(built.dropped))
            # The summary just changed the stable part; rebuild once so this prompt already uses it.
            summary = await self.memory.latest_summary(event.platform, event.channel_id)
            inputs = replace(
                inputs,
                stable_memory=summary.text if summary else None,
                history=inputs.history[len(built.dropped) :],
                window_start_id=built.window_start_id,
            )
            built = replace(
                self.builder.build(inputs, reply_tokens=reply_tokens, reserve_tokens=reserve_tokens), trimmed=True
            )
        # Only ever forward: a reply built before a persona switch must not undo the switch's move.
        self._window_start[event.channel_key] = max(
            built.window_start_id, self._window_start.get(event.channel_key) or 0
        )
        return built

    async def start_window_at_switch(self, channel: ChannelLike) -> None:
        """At a persona switch, keep only the channel's newest ``lines_kept_at_switch`` lines in the
        window; the older ones stay in memory, where recall finds them as it finds any line before
        the window.

        The new persona's prompt shares no prefix with the old one's, so its whole window is evaluated
        again before the first reply; a short window keeps that reply fast, and fewer of the previous
        character's words are in view to be taken for the new one's. No summary is written for the
        lines let go: the summary is part of the system message, and a new one would make the
        persona's saved system-prompt state (llama.cpp) miss, costing far more than the lines.
        """
        key = channel.channel_key
        window_start = self._window_start.get(key) or 0
        keep = self.settings.prompt.lines_kept_at_switch
        # The newest keep + 1 lines say whether the window is longer than keep, and where it starts.
        lines = await self.memory.recent_messages(
            channel.platform, channel.channel_id, limit=keep + 1, after_id=window_start - 1
        )
        if len(lines) <= keep:
            return
        self._window_start[key] = max(lines[len(lines) - keep].id if keep else lines[-1].id + 1, window_start)

    async def read_ahead_request(self, event: ChannelLike) -> GenerationRequest | None:
        """What the channel's next prompt will start with, for the backend to read ahead: the system
        text and the history up to ``event``. A window about to overflow is trimmed now, as the
        next reply would trim it, so that reply finds its new window already read."""
        turn = self._turns.setdefault(event.channel_key, ChannelTurn)
        if not turn.idle():
            return None  # a reply is being written: read once it is stored (see engine.manager.replies)
        persona = await self._persona_for(event.platform, event.channel_id, event.server_id)
        with turn.claimed():
            async with turn.lock:  # a reply arriving now waits for this build (no model work)
                window_start = self._window_start.get(event.channel_key) or 0
                lines = await self.memory.recent_messages(
                    event.platform,
                    event.channel_id,
                    limit=self.settings.prompt.history_lines + 1,
                    after_id=window_start - 1,
                )
                history = [line for line in lines if self.shown_to_model(line, persona)]
                history, window_start = await self._trim_by_count(event, persona, history, window_start)
                summary = await self.memory.latest_summary(event.platform, event.channel_id)
                inputs = PromptInputs(
                    system_prompt=self._system_prompt(persona),
                    stable_memory=summary.text if summary else None,
                    history=history,
                    turn_context=(),
                    new_line=ChatMessage("user", ""),
                    window_start_id=window_start,
                    persona_id=persona.persona_id,
                )
                # Room is kept for the next turn's own context and line, or its reply would trim again.
                reserve = self.settings.backend.context_tokens // _TURN_RESERVE_SHARE
                built = await self._build_in_window(event, persona, inputs, reserve_tokens=reserve)
        return GenerationRequest(
            messages=built.messages[:-1],  # all but the empty stand-in for the next line
            max_tokens=persona.style.max_reply_tokens,
            model=served_model_name(persona, self.settings.backend.model),
            adapter_path=self.adapter_path(persona),
            conversation=event.channel_key,
        )

    async def _replied_line(
        self, event: ChatEvent, history: list[StoredMessage], persona: PersonaCard
    ) -> tuple[str, str] | None:
        """(speaker, text) of the line this one replies to, when it has left the history window."""
        if not event.reply_to_id:
            return None
        line = await self.memory.message_by_platform_id(event.platform, event.reply_to_id)
        if line is None or not self.shown_to_model(line, persona) or any(kept.id == line.id for kept in history):
            return None
        return (line.author_name, line.text)  # a character's line is stored under its display name

    def shown_to_model(self, line: StoredMessage | RecalledLine, persona: PersonaCard) -> bool:
        # Slurs and scam links are stored (mods may need them) but never shown to the model as
        # context; the filter is a pure function of the stored line, so prompts stay stable.
        if line.is_character or (line.from_moderator and self.settings.moderation.exempt_moderators):
            return True
        key = (persona.persona_id, line.id)
        shown = self._shown.get(key)
        if shown is None:
            shown = self._shown[key] = not self.moderator.harmful_text(
                line.text, persona, f"{line.platform}:{line.channel_id}"
            )
            _keep_newest(self._shown)
        return shown

    async def _history_before(self, event: ChatEvent, window_start: int) -> list[StoredMessage]:
        own_id = await self.memory.message_id_for(event.platform, event.message_id)
        upto = own_id - 1 if own_id is not None else None
        return await self.memory.recent_messages(
            # The window start is the oldest line still included, hence the - 1.
            event.platform,
            event.channel_id,
            limit=self.settings.prompt.history_lines + 1,
            after_id=window_start - 1,
            upto_id=upto,
        )

    async def _remember_trim(self, event: ChannelLike, persona: PersonaCard, dropped: list[StoredMessage]) -> None:
        if not dropped:
            return
        previous = await self.memory.latest_summary(event.platform, event.channel_id)
        text = summarise_dropped(dropped, persona, previous.text if previous else None)
        await self.memory.save_summary(event.platform, event.channel_id, text, dropped[-1].id, persona.persona_id)
        if self.reflector is not None:  # the model rewrites it later, when nobody waits for a reply
            lines = [viewer_line(line.author_name, line.text) for line in dropped if self.shown_to_model(line, persona)]
            self.reflector.trimmed(event.platform, event.channel_id, persona, lines, dropped[-1].id)

    def adapter_path(self, persona: PersonaCard) -> str | None:
        return adapter_folder(persona, self._personas.sources.get(persona.persona_id))


def _keep_newest(remembered: OrderedDict[Any, Any]) -> None:
    if len(remembered) > _REMEMBERED_LINES:
        remembered.popitem(last=False)
