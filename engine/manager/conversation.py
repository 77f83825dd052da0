"""ConversationManager: from a stored chat line to a stored, post-processed in-character reply.

One way in, one way out. Every caller (console, Discord, Twitch, replay, benchmarks) does:

1. ``heard = await manager.hear(event)`` for every line: commits it, counts it towards copypasta
   waves, judges it in full if it addresses the character, and returns a :class:`HeardLine`
   that says whether (``heard.blocked``) and how urgently (``heard.priority``) it may be answered;
2. passes ``heard`` on unchanged — to :class:`engine.flow.scheduler.ReplyScheduler.submit`, or
   to :meth:`reply` / :meth:`reply_stream` / :meth:`generate`;
3. ``await manager.link_sent(reply, platform_message_id)`` once the platform took the reply.

Replies in one channel are generated one at a time so history stays append-only; different
channels run concurrently up to ``COSTAR_BACKEND_MAX_CONCURRENCY``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from engine.backends.base import Backend, ChatMessage, GenerationRequest, TextStream
from engine.backends.read_ahead import Channel, ChannelLike, ReadAhead
from engine.base.clock import Clock, MonotonicClock
from engine.base.cooldown import Cooldown
from engine.base.recent import RecentlyUsed
from engine.control.review import Approvals, Decision, parse_approvals
from engine.control.room import ControlRoom
from engine.errors import (
    BackendError,
    BackendUnavailable,
    EngineError,
    MemoryUnavailable,
    PersonaNotFound,
    ReviewRefused,
    SettingsError,
)
from engine.events import ChatEvent, Reply, StreamEvent
from engine.flow.activity import ReplyActivity
from engine.heard import HeardLine
from engine.moderation.moderator import Moderator
from engine.observability.metrics import Metrics
from engine.output.limits import PlatformLimits
from engine.output.postprocess import cut_at_stops, past_max_length, postprocess
from engine.prompting.builder import BuiltPrompt, PromptBuilder, PromptInputs, viewer_message
from engine.prompting.hints import Hint
from engine.prompting.lines import viewer_line
from engine.prompting.tokens import TokenCounter
from engine.prompting.turn_context import build_turn_context, summarise_dropped
from engine.recall.embed_worker import EmbedWorker
from engine.recall.embedding import Embedder, Vectors
from engine.recall.recaller import Recaller
from engine.recall.reflection import Reflector
from engine.serving.adapter_paths import adapter_folder
from engine.serving.model_names import served_model_name
from engine.settings import Settings
from engine.stage.cuts import cut_text
from engine.stage.feed import Stage
from engine.stage.reply import StagedReply, notice_for
from engine.stream.outlet import ChatOutlets
from memory import (
    ForgetResult,
    MemoryStore,
    MemoryStoreError,
    Note,
    RecalledLine,
    StoredMessage,
    Summary,
    UserRecord,
    place_of,
)
from memory.text import is_storable, storable_text
from personas.card import PersonaCard
from personas.lorebook import folded_word_cache_fill
from personas.moderation_rules import Action
from personas.registry import PersonaRegistry
from personas.render import render_system_prompt

__all__ = ["AboutUser", "ConversationManager", "HeardLine"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# OpenAI-compatible servers accept at most 4 stop strings; the rest are applied in post-processing.
_MAX_REQUEST_STOPS = 4
# Per-line "may the model see it" verdicts (about 150 bytes each): enough for a dozen full prompt
# windows (history_lines); a miss only re-runs the cheap, cached moderation check.
_REMEMBERED_LINES = 4096
# Reading ahead trims a window early when less than this share of the context would be left for
# the next turn's context block and line (an eighth: 256 tokens of a 2048-token context).
_TURN_RESERVE_SHARE = 8
# Said to the model before the one regeneration moderation allows; names no rule it could game.
_RETRY_HINT = (
    "Your previous reply was withheld by the chat filter. Reply again in character, briefly, "
    "without links, without slurs, and without repeating your instructions."
)


@dataclass(frozen=True, slots=True)
class AboutUser:
    record: UserRecord | None
    notes: list[Note]


class ConversationManager:
    def __init__(
        self,
        *,
        settings: Settings,
        personas: PersonaRegistry,
        memory: MemoryStore,
        backend: Backend,
        counter: TokenCounter,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or MonotonicClock()
        self.metrics = metrics or Metrics()
        self.personas = personas
        self.memory = memory
        self.backend = backend
        self.builder = PromptBuilder(
            counter, context_tokens=settings.backend.context_tokens, trim_to=settings.prompt.trim_to
        )
        self.activity = ReplyActivity()
        self.reflector = Reflector(memory, backend, settings, self.activity) if settings.memory.reflect else None
        # Recall by meaning: lines are embedded by one worker, off the event loop (start_embeddings).
        self.embeddings = (
            EmbedWorker(
                memory,
                embedder,
                backlog=settings.memory.embed_backlog,
                batch=settings.memory.embed_batch,
                metrics=self.metrics,
            )
            if embedder is not None
            else None
        )
        self.recaller = Recaller(memory, settings.memory, counter.count, embeddings=self.embeddings)
        if self.embeddings is not None:
            self.embeddings.on_embedded = self._notes_by_meaning
        # Each platform's output rules, registered by the platform (bot.platforms): engine names none.
        self.platform_limits: dict[str, PlatformLimits] = {}
        self.stage = Stage()  # captions and voice on the stream itself subscribe here
        # The streamer's dashboard watches here; it holds the mutes and the replies awaiting approval.
        self.control = ControlRoom(
            Approvals(parse_approvals(settings.dashboard.approve), stale_s=settings.dashboard.approve_stale_s)
        )
        self.stage.cuts.writer = self._store_cut
        self.chats = ChatOutlets()  # each running adapter's way to post a line nobody asked for
        self._generation_slots = asyncio.Semaphore(settings.backend.max_concurrency)
        # Per-channel tables keep the most recently active channels only (engine.base.recent):
        # Discord threads and DMs make channels unbounded. A turn someone holds or waits for stays.
        kept = settings.core.channels_kept
        self._channel_turns: RecentlyUsed[str, _ChannelTurn] = RecentlyUsed(kept, evictable=_ChannelTurn.idle)
        self._window_start: RecentlyUsed[str, int] = RecentlyUsed(kept)
        self._system_prompts: dict[str, str] = {}
        self._persona_choices: RecentlyUsed[tuple[str, str, str | None], asyncio.Future[PersonaCard]] = RecentlyUsed(
            kept, evictable=lambda lookup: lookup.done()
        )
        self.moderator = Moderator(settings.moderation, clock=self.clock, channels_kept=kept)
        # When each viewer last asked to be forgotten (perf_counter): a line heard before that is
        # not answered, and a reply to it is not stored, however far along it was.
        self._forgotten_at: RecentlyUsed[tuple[str, str], float] = RecentlyUsed(kept)
        self._storing_replies: set[asyncio.Future[int]] = set()
        self._storing_cuts: set[asyncio.Future[None]] = set()
        # Whether a stored line may be shown to the model, per persona: history is mostly the
        # same lines turn after turn, so each is judged once, not once per reply.
        self._shown: OrderedDict[tuple[str, int], bool] = OrderedDict()
        # One fallback line per channel per cooldown: a dead backend must not make a spam bot.
        self._fallback_cooldown: Cooldown[str] = Cooldown(settings.resilience.fallback_cooldown_s, clock=self.clock)
        self.read_ahead = ReadAhead(backend, self._read_ahead_request)

    # -- personas ---------------------------------------------------------------------------

    def default_persona(self) -> PersonaCard:
        card = self.personas.get(self.settings.core.default_persona)
        if card is not None:
            return card
        if not self.personas.cards:
            raise SettingsError("no persona cards are installed; check COSTAR_PERSONAS_DIR")
        # Refused, like any other mistyped setting: a silent fallback puts the wrong character on stream.
        missing = PersonaNotFound(self.settings.core.default_persona, self.personas.names())
        raise SettingsError(f"COSTAR_DEFAULT_PERSONA: {missing}")

    async def persona_for(self, platform: str, channel_id: str, server_id: str | None = None) -> PersonaCard:
        # Asked for every chat line (moderation, addressing): remembered until a switch, which
        # only this manager makes, instead of one database round trip per line.
        # One shared lookup per key, so a flood of lines arriving together asks the database once.
        key = (platform, channel_id, server_id)
        lookup = self._persona_lookup(key)
        if lookup.done() and not lookup.cancelled() and lookup.exception() is None:
            return lookup.result()
        try:
            return await asyncio.shield(lookup)  # one caller giving up must not cancel the others' lookup
        except BaseException:
            if lookup.done():
                self._persona_choices.pop(key, None)  # a failed lookup is retried next time
            raise

    def _persona_lookup(self, key: tuple[str, str, str | None]) -> asyncio.Future[PersonaCard]:
        return self._persona_choices.setdefault(key, lambda: asyncio.ensure_future(self._chosen_card(*key)))

    async def _chosen_card(self, platform: str, channel_id: str, server_id: str | None) -> PersonaCard:
        chosen = await self.memory.persona_choice(platform, channel_id, server_id)
        if chosen is not None:
            card = self.personas.get(chosen)
            if card is not None:
                return card
            log.warning(
                "Persona %r chosen for %s:%s is no longer installed; using the default", chosen, platform, channel_id
            )
        return self.default_persona()

    async def switch_persona(
        self, platform: str, scope_id: str, name: str, *, scope: str = "channel", set_by: str | None = None
    ) -> PersonaCard:
        card = self.personas.get(name)
        if card is None:
            raise PersonaNotFound(name, self.personas.names())
        await self.memory.set_persona(platform, scope, scope_id, card.persona_id, set_by)
        self._persona_choices.clear()  # a server-wide choice changes many channels' answers
        if scope == "channel":
            self.warm(platform, scope_id)
        return card

    def replace_card(self, persona_id: str, card: PersonaCard) -> PersonaCard:
        """An edited card (its reactions, its !commands) answers from the next line on. The model
        binding stays the one loaded at start: a new adapter needs a restart."""
        running = self.personas.cards[persona_id]
        card = card.model_copy(update={"id": persona_id, "model": running.model})
        self.personas.cards[persona_id] = card
        self._system_prompts.pop(persona_id, None)
        self._persona_choices.clear()  # they hold the old card
        return card

    def warm(self, platform: str, channel_id: str, server_id: str | None = None) -> None:
        """Have a backend that keeps prompt state evaluate the channel's prompt start (system
        prompt, history) now, in the background, so its first reply does not wait for it: for each
        channel an adapter serves at start, and for a channel whose persona just changed."""
        self.read_ahead.warm(Channel(platform, channel_id, server_id))

    def system_prompt(self, card: PersonaCard) -> str:
        # Rendered once per persona: the same bytes every turn keep the server's prefix cache warm.
        if card.persona_id not in self._system_prompts:
            self._system_prompts[card.persona_id] = render_system_prompt(card)
        return self._system_prompts[card.persona_id]

    # -- memory -----------------------------------------------------------------------------

    async def hear(self, event: ChatEvent | StreamEvent) -> HeardLine:
        """Commit a viewer's line and say whether and how urgently it may be answered.

        A :class:`StreamEvent` (follow, raid, ...) is stored as its viewer's line and comes back
        with ``heard.stream`` set (and ``heard.redelivered`` for a second delivery of one already
        stored); what the character says to it is the stream director's business.

        The line is committed whatever moderation will say of it. Every line counts towards
        copypasta waves; only lines that address the character are judged in full here (most of a
        flood does not), and a line the character chimes in on anyway is judged when answered.
        The channel's persona is looked up alongside the commit (once per channel), so judging
        never waits on the database.
        """
        if isinstance(event, StreamEvent):
            return await self._hear_stream_event(event)
        event = _storable(event)
        self._persona_lookup((event.platform, event.channel_id, event.server_id))
        author = await self._remember(self.memory.record_message(event))
        stored_at = time.perf_counter()
        if author.redelivered:  # the platform sent it again: stored once, counted once, answered once
            log.info("%s message %s was delivered again; already stored", event.channel_key, event.message_id)
            return HeardLine(event, stored_at=stored_at, redelivered=True)
        if author.is_new and not event.is_first_message:
            event = replace(event, is_first_message=True)
        persona = await self.persona_for(event.platform, event.channel_id, event.server_id)
        heard = HeardLine(event, repeats=self.moderator.count_repeats(event), stored_at=stored_at)
        if event.addresses_bot:
            heard.verdict = self.moderator.check_input(event, persona, repeats=heard.repeats)
        self.control.heard(event, heard.verdict)
        disclosures = self.recaller.disclosures_in(event)
        if disclosures:
            harmful = self.moderator.harmful_text(event.text, persona, event.channel_key)
            await self._remember(self.recaller.note_disclosures(event, disclosures, harmful=harmful))
        if self.reflector is not None:
            self.reflector.heard(event, persona)
        if self.embeddings is not None:
            self.embeddings.offer(event)
        if not event.addresses_bot:  # an addressed line is read by its own reply, starting now
            self.read_ahead.heard(event)
        return heard

    async def _hear_stream_event(self, stream: StreamEvent) -> HeardLine:
        line = _storable(stream.as_line())
        author = await self._remember(self.memory.record_message(line))
        if author.redelivered:  # EventSub delivers at least once: stored once, reacted to once
            log.info("%s %s event %s was delivered again", line.channel_key, stream.kind, stream.event_id)
            return HeardLine(line, stream=stream, redelivered=True)
        self.metrics.stream_event_seen(stream.platform, stream.kind)
        return HeardLine(line, stream=stream, stored_at=time.perf_counter())

    async def say(self, heard: HeardLine, text: str) -> Reply | None:
        """A fixed line the character says about ``heard`` (a reaction template, a command's text).

        Post-processed and checked by output moderation exactly like a generated reply, and
        stored like one; None when nothing sayable is left.
        """
        event = heard.event
        if self.control.muted(event.channel_key):
            log.info("Not saying a fixed line in %s: muted", event.channel_key)
            return None
        persona = await self.persona_for(event.platform, event.channel_id, event.server_id)
        limits = self.platform_limits.get(event.platform)
        finished = postprocess(text, style=persona.style, speaker_names=(persona.display_name,), limits=limits)
        verdict = self.moderator.check_output(finished, persona, event, may_regenerate=False)
        if not verdict.passes or not verdict.text:
            log.info("Not saying a fixed line in %s (%s)", event.channel_key, ", ".join(verdict.reasons) or "empty")
            self.metrics.drop("moderated_reply" if finished else "empty_reply")
            return None
        turn = self._channel_turns.setdefault(event.channel_key, _ChannelTurn)
        with turn.claimed():
            async with turn.lock:  # history stays append-only
                memory_id = await self._remember(
                    self.memory.record_reply(
                        event, persona_id=persona.persona_id, persona_name=persona.display_name, text=verdict.text
                    )
                )
        if self._on_stage(event):  # a reaction or a command's line shows on the overlay like a reply
            self.stage.publish(notice_for(self.stage, heard, persona, verdict.text))
        return Reply(event, verdict.text, persona.persona_id, persona.display_name, memory_id=memory_id)

    # -- the streamer's controls -------------------------------------------------------------

    async def mute(self, scope: str, muted: bool = True) -> None:
        """Silence ``scope`` ("*", a platform or a channel key), or lift that: from this call on
        nothing more is said there (replies being written stop, captions come down, the voice
        stops); lines are still heard and stored. Kept across restarts."""
        self.control.set_muted(scope, muted)
        if muted:
            taken = self.stage.clear(self.control.muted)
            log.info("Muted %s (%d lines taken off the stream)", scope, len(taken))
        else:
            log.info("Unmuted %s", scope)
        await self._remember(self.memory.set_muted(scope, muted))

    async def restore_controls(self) -> None:
        """The mutes in force when the bot last stopped."""
        for scope in await self._remember(self.memory.muted_scopes()):
            self.control.set_muted(scope, True)

    def line_outcome(self, event: object, outcome: str) -> None:
        """A reply scheduler's outcome listener: /metrics counts the unanswered, the dashboard shows each."""
        self.metrics.scheduler_outcome(event, outcome)
        self.control.outcome(event, outcome)

    def harmful_text(self, text: str, persona: PersonaCard, channel_key: str) -> bool:
        """Whether a viewer's words break a content rule that keeps the character from saying them
        (the stream director fills reactions with them)."""
        return self.moderator.harmful_text(text, persona, channel_key)

    def harmful_name(self, name: str, persona: PersonaCard, channel_key: str) -> bool:
        """:meth:`harmful_text` for a user name the character might read out."""
        return self.moderator.harmful_name(name, persona, channel_key)

    def muted(self, channel_key: str) -> bool:
        """Whether the streamer muted the character in this channel (or on its platform, or everywhere)."""
        return self.control.muted(channel_key)

    def count_said(self, platform: str, kind: str) -> None:
        """Something the character said on its own (a reaction, a timer line) went out: /metrics counts it."""
        self.metrics.stream_reaction(platform, kind)

    async def link_sent(self, reply: Reply, platform_message_id: str) -> None:
        """Remember the platform's id for a sent reply, so later lines that reply to it find it."""
        if reply.memory_id is not None:
            await self._remember(self.memory.set_platform_message_id(reply.memory_id, platform_message_id))

    def channel_state(self) -> dict[str, int]:
        """Entries held per channel-keyed table (tests and benchmarks watch them stay bounded)."""
        return {
            "manager_turns": len(self._channel_turns),
            "manager_windows": len(self._window_start),
            "manager_persona_lookups": len(self._persona_choices),
            **self.moderator.channel_state(),
        }

    def cache_fill(self) -> dict[str, tuple[int, int]]:
        """(entries, capacity) of each bounded per-line cache; benchmarks warm up until all are full.

        With recall by meaning on, the channels' vectors held in memory for search count too (rows).
        """
        fill = {
            "shown_verdicts": (len(self._shown), _REMEMBERED_LINES),
            "lore_words": folded_word_cache_fill(),
            **self.moderator.cache_fill(),
        }
        if self.embeddings is not None:
            fill["recall_vectors"] = self.memory.held_vectors_fill()
        return fill

    async def _notes_by_meaning(self, events: list[ChatEvent], vectors: Vectors) -> None:
        """The embed worker's hook: notes from lines that are self-disclosures by meaning."""

        async def harmful(event: ChatEvent) -> bool:
            persona = await self.persona_for(event.platform, event.channel_id, event.server_id)
            return self.moderator.harmful_text(event.text, persona, event.channel_key)

        await self.recaller.note_by_meaning(events, vectors, harmful=harmful)

    async def start_embeddings(self) -> None:
        """Start the embedding worker (``build_manager`` does); nothing to do without an embedder."""
        if self.embeddings is not None:
            await self._remember(self.embeddings.start())

    async def close(self) -> None:
        """Stop reflecting and embedding, flush and close memory; the backend belongs to whoever built it."""
        await self.read_ahead.aclose()
        if self.reflector is not None:
            await self.reflector.close()
        if self.embeddings is not None:
            await self.embeddings.close()
        if self._storing_cuts:
            await asyncio.gather(*self._storing_cuts, return_exceptions=True)
        await self.memory.close()

    def _store_cut(self, row_id: int, spoken: str) -> None:
        """A reply the host talked over is kept as far as it was spoken (engine.stage.cuts)."""

        async def store() -> None:
            try:
                await self._remember(self.memory.cut_reply(row_id, cut_text(spoken)))
            except MemoryUnavailable as exc:
                log.error("Could not mark reply %d as cut off: %s", row_id, exc)

        storing = asyncio.ensure_future(store())
        self._storing_cuts.add(storing)
        storing.add_done_callback(self._storing_cuts.discard)

    @staticmethod
    async def _remember(operation: Awaitable[T]) -> T:
        """Await a memory operation; its failure becomes the engine's :class:`MemoryUnavailable`."""
        try:
            return await operation
        except MemoryStoreError as exc:
            raise MemoryUnavailable(str(exc)) from exc

    async def forget(self, platform: str, user_id: str) -> ForgetResult:
        """Delete what memory holds about the viewer, drop replies to them still being written, and
        drop the stage cues still queued that answer or name them."""
        self._forgotten_at[(platform, user_id)] = time.perf_counter()
        if self.embeddings is not None:
            self.embeddings.forget(platform, user_id)
        if self._storing_replies:  # passed the check just before: let them land so the forget takes them
            await asyncio.wait(set(self._storing_replies))
        names = await self._remember(self.memory.names_of(platform, user_id))
        result = await self._remember(self.memory.forget_user(platform, user_id))
        dropped = self.stage.drop_viewer(platform, user_id, names)
        if dropped:
            log.info("forget: %d stage cues still queued for a listener were dropped", dropped)
        return result

    def _forgotten_since(self, heard: HeardLine) -> bool:
        event = heard.event
        forgotten_at = self._forgotten_at.get((event.platform, event.author_id))
        return forgotten_at is not None and forgotten_at >= heard.stored_at

    async def delete_note(
        self, platform: str, note_id: int, *, moderator_in: tuple[str, str | None] | None = None
    ) -> bool:
        """A moderator removes one note; False when there is no such note on that platform, or
        (``moderator_in``: the channel and server they moderate) none said within their server or channel."""
        within = place_of(*moderator_in) if moderator_in is not None else None
        return await self._remember(self.memory.delete_note(platform, note_id, within=within))

    async def about(
        self, platform: str, user_id: str, *, moderator_in: tuple[str, str | None] | None = None
    ) -> AboutUser:
        """What memory holds about a viewer: all their notes for themselves; for a moderator
        (``moderator_in``: the channel and server they asked in) only the notes said within that
        server (Discord) or channel (Twitch), never one from a DM or another server."""
        within = place_of(*moderator_in) if moderator_in is not None else None
        record = await self._remember(self.memory.get_user(platform, user_id))
        notes = await self._remember(self.memory.notes_for(platform, user_id, within=within)) if record else []
        return AboutUser(record, notes)

    async def find_viewers(self, text: str, *, limit: int = 20) -> list[UserRecord]:
        """Viewers whose name or id contains ``text``, most recently seen first (the dashboard's search)."""
        return await self._remember(self.memory.search_users(text, limit=limit))

    async def viewer_lines(self, platform: str, user_id: str, *, limit: int = 20) -> list[StoredMessage]:
        """A viewer's newest lines with their channel and time: what recall can find of them."""
        return await self._remember(self.memory.viewer_lines(platform, user_id, limit=limit))

    async def summary(self, platform: str, channel_id: str) -> Summary | None:
        """The channel's rolling summary, the newest one written."""
        return await self._remember(self.memory.latest_summary(platform, channel_id))

    # -- replying ---------------------------------------------------------------------------

    async def handle(self, event: ChatEvent) -> Reply | None:
        """Hear a line and, if it addresses the character and may be answered, reply."""
        heard = await self.hear(event)
        if heard.blocked or not event.addresses_bot:
            return None
        return await self.reply(heard)

    async def reply(self, heard: HeardLine, *, hint: Hint | None = None) -> Reply | None:
        """The finished reply, or None. ``hint`` is an instruction for this reply only (a reaction's
        or a command's prompt), given to the model after the viewer's line: its instruction as a
        system message, the viewer-chosen words it refers to quoted in the viewer's user turn."""
        final: Reply | None = None
        async for item in self.generate(heard, snapshots=False, hint=hint):
            if isinstance(item, Reply):
                final = item
        if final is not None and self.control.muted(heard.event.channel_key):
            return None  # muted after it was written: it is stored, never said
        return final

    async def reply_stream(self, heard: HeardLine) -> AsyncIterator[str]:
        async for item in self.generate(heard):
            if isinstance(item, str):
                yield item

    async def generate(
        self, heard: HeardLine, *, snapshots: bool = True, hint: Hint | None = None
    ) -> AsyncGenerator[str | Reply, None]:
        """Cumulative post-processed text snapshots, then the stored Reply (none if it came out empty).

        For adapters that stream and still need the Reply (to link the platform's message id).
        ``snapshots=False`` skips post-processing and checking every chunk (work that grows with the
        square of the reply length) when nobody shows the text before it is finished — unless
        someone watches the stage (an overlay, a voice): they get the snapshots either way. A
        private conversation (a DM, a channel marked private) is never staged.
        """
        channel = heard.event.channel_key
        if self.control.approvals.needed(channel):
            async for item in self._generate_for_review(heard, hint):
                yield item
            return
        if not self._on_stage(heard.event):
            shown = False
            async for item in self.control.until_muted(channel, self._generate(heard, snapshots=snapshots, hint=hint)):
                shown = isinstance(item, str) and bool(item)
                yield item
            if shown and self.control.muted(channel):
                yield ""  # muted mid-reply: take back what the platform shows
            return
        event = heard.event
        staged = StagedReply(
            self.stage, heard, await self.persona_for(event.platform, event.channel_id, event.server_id)
        )
        try:
            async for item in self.control.until_muted(channel, self._generate(heard, snapshots=True, hint=hint)):
                staged.take(item)
                if isinstance(item, Reply) and item.memory_id is not None:
                    self.stage.cuts.stored(staged.cue_id, item.memory_id)
                if snapshots or isinstance(item, Reply):
                    yield item
            if staged.shown and not staged.finished and self.control.muted(channel):
                yield ""
        finally:
            staged.close()

    async def _generate_for_review(self, heard: HeardLine, hint: Hint | None) -> AsyncIterator[str | Reply]:
        """Approve-before-send: the finished reply is held for the streamer; nothing is shown (on
        the platform or the stream) until it is approved, and then only the approved text."""
        event = heard.event
        written: Reply | None = None
        async for item in self.control.until_muted(
            event.channel_key, self._generate(heard, snapshots=False, hint=hint)
        ):
            if isinstance(item, Reply):
                written = item
        if written is None:
            return
        reviewed = await self._reviewed(written)
        if reviewed is None or self.control.muted(event.channel_key):
            return
        if self._on_stage(event):
            persona = await self.persona_for(event.platform, event.channel_id, event.server_id)
            self.stage.publish(notice_for(self.stage, heard, persona, reviewed.text))
        yield reviewed.text
        yield reviewed

    async def _reviewed(self, reply: Reply) -> Reply | None:
        """Hold ``reply`` until the streamer sends, edits or drops it (or it goes stale); the
        decision is stored with the reply. None when it is not to be sent."""
        held = self.control.approvals.hold(reply)
        self.control.publish(held.wire())
        decision, text = await self.control.approvals.decision(held)
        self.control.publish({"type": "settled", "id": held.held_id, "decision": decision.value})
        log.info("Held reply in %s: %s", reply.event.channel_key, decision.value)
        if reply.memory_id is not None:
            draft = reply.text if decision is Decision.EDITED else None
            await self._remember(self.memory.set_review(reply.memory_id, decision.value, text=text, draft=draft))
        if decision in (Decision.DROPPED, Decision.STALE):
            self.metrics.drop(f"review_{decision.value}")
            return None
        return replace(reply, text=text)

    async def decide(self, held_id: str, decision: Decision, text: str | None = None) -> None:
        """The streamer's decision on a held reply. An edit is post-processed and checked by output
        moderation like any reply; refused text leaves the reply waiting (ReviewRefused says why)."""
        held = self.control.approvals.held.get(held_id)
        if held is None:
            raise ReviewRefused("that reply is no longer waiting: it was sent, dropped or went stale")
        checked = held.reply.text
        if decision is Decision.EDITED:
            event = held.reply.event
            persona = await self.persona_for(event.platform, event.channel_id, event.server_id)
            limits = self.platform_limits.get(event.platform)
            finished = postprocess(
                text or "", style=persona.style, speaker_names=(persona.display_name,), limits=limits
            )
            verdict = self.moderator.check_output(finished, persona, event, may_regenerate=False)
            if not verdict.passes or not verdict.text:
                raise ReviewRefused(
                    "the edited text did not pass moderation: " + (", ".join(verdict.reasons) or "empty")
                )
            checked = verdict.text
        if not self.control.approvals.decide(held_id, decision, checked):
            raise ReviewRefused("that reply is no longer waiting: it was sent, dropped or went stale")

    def _on_stage(self, event: ChatEvent) -> bool:
        """Whether what is said to ``event`` goes on the stream: someone watches the stage (an
        overlay, a voice, OBS) and the conversation is not private. The one check for both."""
        return self.stage.watched and not event.private

    async def _generate(self, heard: HeardLine, *, snapshots: bool, hint: Hint | None) -> AsyncIterator[str | Reply]:
        event = heard.event
        if heard.redelivered:
            return  # its first delivery is the one answered
        timer = self.metrics.start_reply(event.platform)
        persona = await self.persona_for(event.platform, event.channel_id, event.server_id)
        if heard.verdict is None:  # chiming in on a line nobody asked the character about
            heard.verdict = self.moderator.check_input(event, persona, repeats=heard.repeats)
        verdict = heard.verdict
        if verdict.action is Action.DROP:
            log.info(
                "Not answering %s message %s (%s)", event.channel_key, event.message_id, ", ".join(verdict.reasons)
            )
            self.metrics.drop("moderated_input")
            return
        async with self._generation_turn(event.channel_key):
            if self._forgotten_since(heard):
                log.info(
                    "Not answering %s message %s: its author asked to be forgotten", event.channel_key, event.message_id
                )
                self.metrics.drop("forgotten")
                return
            if verdict.action is Action.REPLACE:  # answered with the safe line, no model call
                text, attempt, built = verdict.text, _Attempt(), None
            else:
                built = await self._remember(self._build_prompt(event, persona))
                attempt = _Attempt(on_first_chunk=timer.first_chunk)
                request = self._request(persona, built, event)
                if hint:
                    request = _with_hint(request, hint)
                try:
                    async for snapshot in self._moderated_attempts(request, persona, event, attempt, snapshots):
                        yield snapshot
                except BackendError as exc:
                    self.metrics.backend_error(exc)
                    self.metrics.drop("backend_error")
                    raise
                text = attempt.text
            if self._forgotten_since(heard):  # forgotten while the reply was being written
                log.info(
                    "Dropping the reply to %s message %s: its author was forgotten", event.channel_key, event.message_id
                )
                self.metrics.drop("forgotten")
                if attempt.shown:
                    yield ""  # retract what was shown
                return
            if text != attempt.shown:
                yield text  # the final text; "" retracts snapshots already shown
            if not text:
                log.info(
                    "No reply for %s after post-processing and moderation (raw %d chars)",
                    event.channel_key,
                    len(attempt.raw),
                )
                self.metrics.drop("moderated_reply" if attempt.raw.strip() else "empty_reply")
                return
            reply = Reply(
                event=event,
                text=text,
                persona_id=persona.persona_id,
                persona_name=persona.display_name,
                usage=attempt.stream.usage if attempt.stream else None,
                prompt_tokens=built.prompt_tokens if built else 0,
                history_trimmed=built.trimmed if built else False,
                finish_reason=attempt.stream.finish_reason if attempt.stream else "moderation",
            )
            storing = asyncio.ensure_future(
                self.memory.record_reply(
                    event, persona_id=reply.persona_id, persona_name=reply.persona_name, text=reply.text
                )
            )
            self._storing_replies.add(storing)  # a forget starting now waits for it, then deletes it
            storing.add_done_callback(self._storing_replies.discard)
            memory_id = await self._remember(storing)
            self.metrics.finish_reply(timer, persona.persona_id)
            yield replace(reply, memory_id=memory_id)
        self.read_ahead.heard(event)  # what was said during the reply, and the reply itself

    @asynccontextmanager
    async def _generation_turn(self, channel_key: str) -> AsyncIterator[None]:
        """One reply at a time per channel, MAX_CONCURRENCY across channels; waiting shows as queue depth."""
        async with AsyncExitStack() as held:
            held.enter_context(self.activity.reply())  # idle-time reflection yields at once
            turn = self._channel_turns.setdefault(channel_key, _ChannelTurn)
            held.enter_context(turn.claimed())
            with self.metrics.waiting_for_slot():
                await held.enter_async_context(turn.lock)
                await held.enter_async_context(self._generation_slots)
            with self.metrics.generating():
                yield

    # -- moderation -------------------------------------------------------------------------

    async def fallback_reply(self, event: ChatEvent, override: str | None = None) -> str | None:
        """COSTAR_PROMPT_FALLBACK_REPLY (or an adapter's own ``override``) to send after a
        BackendError, at most once per channel per COSTAR_RESILIENCE_FALLBACK_COOLDOWN_S (a dead
        backend must not turn the character into a spam bot); None means say nothing. Platform
        fixes ('/' on Twitch) apply."""
        fallback = override or self.settings.prompt.fallback_reply
        if not fallback or not self._fallback_cooldown.try_use(event.channel_key):
            return None
        persona = await self.persona_for(event.platform, event.channel_id, event.server_id)
        text = postprocess(fallback, style=persona.style, limits=self.platform_limits.get(event.platform))
        return self.moderator.check_output(text, persona, event, final=False).text or None

    async def _moderated_attempts(
        self, request: GenerationRequest, persona: PersonaCard, event: ChatEvent, attempt: _Attempt, snapshots: bool
    ) -> AsyncIterator[str]:
        """Generate and check; ``attempt.text`` is the outcome.

        One more try when the reply came out empty (a tiny model sometimes says nothing usable:
        only a speaker label or an end token) or when a moderation rule says regenerate.
        """
        for try_number in (1, 2):
            async for snapshot in self._attempt(request, persona, event, attempt, snapshots):
                yield snapshot
            text = self._finish(attempt.raw, persona, event, request.stop)
            verdict = self.moderator.check_output(text, persona, event, may_regenerate=try_number == 1)
            attempt.text = verdict.text
            if verdict.action is Action.REGENERATE:
                request = _with_retry_hint(request)
            elif text:
                return
            else:
                log.info("Empty reply for %s after post-processing (raw %d chars)", event.channel_key, len(attempt.raw))

    async def _attempt(
        self, request: GenerationRequest, persona: PersonaCard, event: ChatEvent, attempt: _Attempt, snapshots: bool
    ) -> AsyncIterator[str]:
        """One generation; yields post-processed snapshots until one fails moderation."""
        attempt.stream = self.backend.stream(request)
        attempt.raw, withheld = "", False
        names = (persona.name, persona.display_name)

        def long_enough(raw: str) -> bool:
            return past_max_length(raw, style=persona.style, speaker_names=names, stops=request.stop)

        async for attempt.raw in self._stream_raw(attempt.stream, request.stop, long_enough):
            attempt.on_first_chunk()
            if not snapshots:
                continue  # only the finished text is checked and kept
            snapshot = self._finish(attempt.raw, persona, event, request.stop)
            if not snapshot or withheld:
                continue
            checked = self.moderator.check_output(snapshot, persona, event, final=False)
            withheld = not checked.passes
            if checked.passes and checked.text and checked.text != attempt.shown:
                attempt.shown = checked.text
                yield checked.text

    async def _stream_raw(
        self, stream: TextStream, stops: tuple[str, ...], long_enough: Callable[[str], bool]
    ) -> AsyncIterator[str]:
        """Cumulative raw text; ends early at a stop sequence or once the reply is long enough to
        be cut to its maximum length (closing the stream stops the generation); errors become
        BackendError."""
        raw = ""
        chunks = aiter(stream)
        # Only the backend's own time counts: an adapter taking its time over each snapshot (Discord
        # edits) must not use the reply's allowance up, nor have the timeout's cancellation land
        # inside its platform library instead of in the backend.
        loop, allowance = asyncio.get_running_loop(), self.settings.backend.timeout_s
        try:
            while True:
                asked = loop.time()
                async with asyncio.timeout(allowance):
                    chunk = await anext(chunks, None)
                allowance -= loop.time() - asked
                if chunk is None:
                    break
                raw += chunk
                raw, stopped = cut_at_stops(raw, stops)
                yield raw
                if stopped:
                    stream.finish_reason = "stop"
                    break
                if long_enough(raw):
                    stream.finish_reason = "length"
                    break
        except TimeoutError as exc:
            raise BackendUnavailable(f"no reply within {self.settings.backend.timeout_s:g} s") from exc
        except EngineError:
            raise
        except Exception as exc:  # a backend bug must not take the adapter down with it
            raise BackendError(f"{self.backend.name} backend failed: {exc}") from exc
        finally:
            await stream.aclose()

    def _finish(self, raw: str, persona: PersonaCard, event: ChatEvent, stops: tuple[str, ...]) -> str:
        return postprocess(
            raw,
            style=persona.style,
            speaker_names=(persona.name, persona.display_name),
            stops=stops,
            limits=self.platform_limits.get(event.platform),
        )

    def _request(self, persona: PersonaCard, built: BuiltPrompt, event: ChatEvent) -> GenerationRequest:
        names = [event.author_name, "Viewer", "User", persona.display_name]
        stops = tuple(dict.fromkeys(f"\n{name}:" for name in names))[:_MAX_REQUEST_STOPS]
        request = GenerationRequest(
            messages=built.messages,
            max_tokens=persona.style.max_reply_tokens,
            temperature=persona.style.temperature,
            repetition_penalty=persona.style.repetition_penalty,
            recent_words_penalty=persona.style.recent_words_penalty,
            stop=stops,
            model=served_model_name(persona, self.settings.backend.model),
            adapter_path=self._adapter_path(persona),
            seed=self.settings.backend.seed,
            conversation=event.channel_key,
        )
        return replace(request, shorten=lambda: _without_older_half(request))

    def _adapter_path(self, persona: PersonaCard) -> str | None:
        return adapter_folder(persona, self.personas.sources.get(persona.persona_id))

    # -- prompt -----------------------------------------------------------------------------

    async def _build_prompt(self, event: ChatEvent, persona: PersonaCard) -> BuiltPrompt:
        key = event.channel_key
        window_start = self._window_start.get(key) or 0
        history = [
            line for line in await self._history_before(event, window_start) if self._shown_to_model(line, persona)
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
            shown=self._shown_to_model,
            quoted=replied_to[1] if replied_to else None,
        )
        inputs = PromptInputs(
            system_prompt=self.system_prompt(persona),
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
        self._window_start[event.channel_key] = built.window_start_id
        return built

    async def _read_ahead_request(self, event: ChannelLike) -> GenerationRequest | None:
        """What the channel's next prompt will start with, for the backend to read ahead: the system
        text and the history up to ``event``. A window about to overflow is trimmed now, as the
        next reply would trim it, so that reply finds its new window already read."""
        turn = self._channel_turns.setdefault(event.channel_key, _ChannelTurn)
        if not turn.idle():
            return None  # a reply is being written: read once it is stored (see _generate)
        persona = await self.persona_for(event.platform, event.channel_id, event.server_id)
        with turn.claimed():
            async with turn.lock:  # a reply arriving now waits for this build (no model work)
                window_start = self._window_start.get(event.channel_key) or 0
                lines = await self.memory.recent_messages(
                    event.platform,
                    event.channel_id,
                    limit=self.settings.prompt.history_lines + 1,
                    after_id=window_start - 1,
                )
                history = [line for line in lines if self._shown_to_model(line, persona)]
                history, window_start = await self._trim_by_count(event, persona, history, window_start)
                summary = await self.memory.latest_summary(event.platform, event.channel_id)
                inputs = PromptInputs(
                    system_prompt=self.system_prompt(persona),
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
            adapter_path=self._adapter_path(persona),
            conversation=event.channel_key,
        )

    async def _replied_line(
        self, event: ChatEvent, history: list[StoredMessage], persona: PersonaCard
    ) -> tuple[str, str] | None:
        """(speaker, text) of the line this one replies to, when it has left the history window."""
        if not event.reply_to_id:
            return None
        line = await self.memory.message_by_platform_id(event.platform, event.reply_to_id)
        if line is None or not self._shown_to_model(line, persona) or any(kept.id == line.id for kept in history):
            return None
        return (line.author_name, line.text)  # a character's line is stored under its display name

    def _shown_to_model(self, line: StoredMessage | RecalledLine, persona: PersonaCard) -> bool:
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
            lines = [
                viewer_line(line.author_name, line.text) for line in dropped if self._shown_to_model(line, persona)
            ]
            self.reflector.trimmed(event.platform, event.channel_id, persona, lines, dropped[-1].id)


class _ChannelTurn:
    """One channel's reply lock, and how many replies hold it or wait for it."""

    __slots__ = ("claims", "lock")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.claims = 0

    @contextmanager
    def claimed(self) -> Iterator[None]:
        # Counted, not read off the lock: between a release and the next waiter waking, an
        # asyncio.Lock looks free, and a second lock for the channel would allow two replies.
        self.claims += 1
        try:
            yield
        finally:
            self.claims -= 1

    def idle(self) -> bool:
        return self.claims == 0


def _keep_newest(remembered: OrderedDict[Any, Any]) -> None:
    if len(remembered) > _REMEMBERED_LINES:
        remembered.popitem(last=False)


@dataclass
class _Attempt:
    """What one reply's generation(s) produced; ``shown`` is the last snapshot given to a streamer."""

    stream: TextStream | None = None
    raw: str = ""
    shown: str = ""
    text: str = ""
    on_first_chunk: Callable[[], None] = lambda: None  # time to first chunk, streamed or not


def _with_retry_hint(request: GenerationRequest) -> GenerationRequest:
    return _with_hint(request, Hint(_RETRY_HINT))


def _with_hint(request: GenerationRequest, hint: Hint) -> GenerationRequest:
    # Last, after the viewer's line: the cached prefix (system prompt, history) stays the same.
    # Only our words go into the system message; the viewer-chosen words it refers to join the
    # viewer's line, which the prompt builder always puts last as a user message.
    messages = request.messages
    if hint.quoted:
        *before, line = messages
        assert line.role == "user", "a hint's quoted words belong to the viewer's line"
        messages = (*before, ChatMessage("user", f"{line.content}\n{hint.quoted}"))
    hinted = replace(request, messages=(*messages, ChatMessage("system", hint.instruction)))
    unhinted_shorten = request.shorten

    def shorten() -> GenerationRequest | None:  # a shorter prompt keeps its hint
        shorter = unhinted_shorten() if unhinted_shorten is not None else None
        return _with_hint(shorter, hint) if shorter is not None else None

    return replace(hinted, shorten=shorten)


def _without_older_half(request: GenerationRequest) -> GenerationRequest | None:
    """For a server that says the prompt is too long: the same prompt with half the history."""
    system, *rest = request.messages
    tail_size = 2 if len(rest) >= 2 and rest[-2].role == "system" else 1
    history, tail = rest[:-tail_size], rest[-tail_size:]
    if not history:
        return None
    shorter = replace(request, messages=(system, *history[len(history) // 2 + 1 :], *tail))
    return replace(shorter, shorten=lambda: _without_older_half(shorter))


# The fields of a chat line that come from outside (a platform's JSON, a transcript, a terminal).
_OUTSIDE_FIELDS = (
    "platform",
    "channel_id",
    "author_id",
    "author_name",
    "text",
    "message_id",
    "reply_to_id",
    "server_id",
)


def _storable(event: ChatEvent) -> ChatEvent:
    """``event`` with text memory cannot store (a lone surrogate) replaced by U+FFFD, logged once.

    Cleaned here, at the engine's one way in, so the line is stored, judged, prompted and shown
    as the same text; left as it was, it would fail its whole group-commit batch.
    """
    bad = [name for name in _OUTSIDE_FIELDS if not is_storable(getattr(event, name) or "")]
    if not bad:
        return event
    cleaned_fields: dict[str, Any] = {name: storable_text(getattr(event, name)) for name in bad}
    cleaned = replace(event, **cleaned_fields)
    log.warning(
        "%s message %s held text that cannot be stored (a lone surrogate in %s); stored with U+FFFD in its place",
        cleaned.channel_key,
        cleaned.message_id,
        ", ".join(bad),
    )
    return cleaned
