"""ConversationManager: the one way in and out, and its viewer and persona verbs.

The manager hears every line (:meth:`ConversationManager.hear`), keeps each channel's persona,
the streamer's controls and what memory holds about viewers (forget, about, notes). Writing a
reply is :class:`engine.manager.replies.ReplyPipeline`'s job and building its prompt
:class:`engine.manager.prompts.PromptWindows`'s; the manager's reply verbs (``reply``,
``reply_stream``, ``generate``, ``say``, ``decide``, ``fallback_reply``) hand over to them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from engine.backends.base import Backend
from engine.backends.read_ahead import Channel, ReadAhead
from engine.base.clock import Clock, MonotonicClock
from engine.base.recent import RecentlyUsed
from engine.control.review import Approvals, Decision, parse_approvals
from engine.control.room import ControlRoom
from engine.errors import MemoryUnavailable, PersonaNotFound, SettingsError
from engine.events import ChatEvent, Reply, StreamEvent
from engine.flow.activity import ReplyActivity
from engine.heard import HeardLine
from engine.manager.prompts import PromptWindows
from engine.manager.replies import ReplyPipeline
from engine.manager.turns import ChannelTurn, remember
from engine.moderation.moderator import Moderator
from engine.observability.metrics import Metrics
from engine.output.limits import PlatformLimits
from engine.prompting.builder import PromptBuilder
from engine.prompting.hints import Hint
from engine.prompting.tokens import TokenCounter
from engine.recall.embed_worker import EmbedWorker
from engine.recall.embedding import Embedder, Vectors
from engine.recall.recaller import Recaller
from engine.recall.reflection import Reflector
from engine.settings import Settings
from engine.stage.cuts import cut_text
from engine.stage.feed import Stage
from engine.stream.outlet import ChatOutlets
from memory import ForgetResult, MemoryStore, Note, StoredMessage, Summary, UserRecord, place_of
from memory.text import is_storable, storable_text
from personas.card import PersonaCard
from personas.lorebook import folded_word_cache_fill
from personas.registry import PersonaRegistry
from personas.render import render_system_prompt

__all__ = ["AboutUser", "ConversationManager"]

log = logging.getLogger(__name__)


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
        # Per-channel tables keep the most recently active channels only (engine.base.recent):
        # Discord threads and DMs make channels unbounded. A turn someone holds or waits for stays.
        kept = settings.core.channels_kept
        self._channel_turns: RecentlyUsed[str, ChannelTurn] = RecentlyUsed(kept, evictable=ChannelTurn.idle)
        self._system_prompts: dict[str, str] = {}
        self._persona_choices: RecentlyUsed[tuple[str, str, str | None], asyncio.Future[PersonaCard]] = RecentlyUsed(
            kept, evictable=lambda lookup: lookup.done()
        )
        self.moderator = Moderator(settings.moderation, clock=self.clock, channels_kept=kept)
        # When each viewer last asked to be forgotten (perf_counter): a line heard before that is
        # not answered, and a reply to it is not stored, however far along it was.
        self._forgotten_at: RecentlyUsed[tuple[str, str], float] = RecentlyUsed(kept)
        self._storing_cuts: set[asyncio.Future[None]] = set()
        self.prompts = PromptWindows(
            settings=settings,
            memory=memory,
            builder=self.builder,
            recaller=self.recaller,
            moderator=self.moderator,
            reflector=self.reflector,
            personas=personas,
            turns=self._channel_turns,
            persona_for=self.persona_for,
            system_prompt=self.system_prompt,
        )
        self.read_ahead = ReadAhead(backend, self.prompts.read_ahead_request)
        self.replies = ReplyPipeline(
            settings=settings,
            backend=backend,
            memory=memory,
            moderator=self.moderator,
            metrics=self.metrics,
            clock=self.clock,
            control=self.control,
            stage=self.stage,
            prompts=self.prompts,
            read_ahead=self.read_ahead,
            activity=self.activity,
            turns=self._channel_turns,
            platform_limits=self.platform_limits,
            persona_for=self.persona_for,
            forgotten_since=self._forgotten_since,
        )

    @property
    def backend(self) -> Backend:
        """The model the replies are written with (a benchmark may wrap it)."""
        return self.replies.backend

    @backend.setter
    def backend(self, backend: Backend) -> None:
        self.replies.backend = backend

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
            await self.prompts.start_window_at_switch(Channel(platform, scope_id))
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
        author = await remember(self.memory.record_message(event))
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
            await remember(self.recaller.note_disclosures(event, disclosures, harmful=harmful))
        if self.reflector is not None:
            self.reflector.heard(event, persona)
        if self.embeddings is not None:
            self.embeddings.offer(event)
        if not event.addresses_bot:  # an addressed line is read by its own reply, starting now
            self.read_ahead.heard(event)
        return heard

    async def _hear_stream_event(self, stream: StreamEvent) -> HeardLine:
        line = _storable(stream.as_line())
        author = await remember(self.memory.record_message(line))
        if author.redelivered:  # EventSub delivers at least once: stored once, reacted to once
            log.info("%s %s event %s was delivered again", line.channel_key, stream.kind, stream.event_id)
            return HeardLine(line, stream=stream, redelivered=True)
        self.metrics.stream_event_seen(stream.platform, stream.kind)
        return HeardLine(line, stream=stream, stored_at=time.perf_counter())

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
        await remember(self.memory.set_muted(scope, muted))

    async def restore_controls(self) -> None:
        """The mutes in force when the bot last stopped."""
        for scope in await remember(self.memory.muted_scopes()):
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
            await remember(self.memory.set_platform_message_id(reply.memory_id, platform_message_id))

    def channel_state(self) -> dict[str, int]:
        """Entries held per channel-keyed table (tests and benchmarks watch them stay bounded)."""
        return {
            "manager_turns": len(self._channel_turns),
            "manager_windows": self.prompts.windows_held(),
            "manager_persona_lookups": len(self._persona_choices),
            **self.moderator.channel_state(),
        }

    def cache_fill(self) -> dict[str, tuple[int, int]]:
        """(entries, capacity) of each bounded per-line cache; benchmarks warm up until all are full.

        With recall by meaning on, the channels' vectors held in memory for search count too (rows).
        """
        fill = {
            "shown_verdicts": self.prompts.shown_fill(),
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
            await remember(self.embeddings.start())

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
                await remember(self.memory.cut_reply(row_id, cut_text(spoken)))
            except MemoryUnavailable as exc:
                log.error("Could not mark reply %d as cut off: %s", row_id, exc)

        storing = asyncio.ensure_future(store())
        self._storing_cuts.add(storing)
        storing.add_done_callback(self._storing_cuts.discard)

    async def forget(self, platform: str, user_id: str) -> ForgetResult:
        """Delete what memory holds about the viewer, drop replies to them still being written, and
        drop the stage cues still queued that answer or name them."""
        self._forgotten_at[(platform, user_id)] = time.perf_counter()
        if self.embeddings is not None:
            self.embeddings.forget(platform, user_id)
        if self.replies.storing_replies:  # passed the check just before: let them land so the forget takes them
            await asyncio.wait(set(self.replies.storing_replies))
        names = await remember(self.memory.names_of(platform, user_id))
        result = await remember(self.memory.forget_user(platform, user_id))
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
        return await remember(self.memory.delete_note(platform, note_id, within=within))

    async def about(
        self, platform: str, user_id: str, *, moderator_in: tuple[str, str | None] | None = None
    ) -> AboutUser:
        """What memory holds about a viewer: all their notes for themselves; for a moderator
        (``moderator_in``: the channel and server they asked in) only the notes said within that
        server (Discord) or channel (Twitch), never one from a DM or another server."""
        within = place_of(*moderator_in) if moderator_in is not None else None
        record = await remember(self.memory.get_user(platform, user_id))
        notes = await remember(self.memory.notes_for(platform, user_id, within=within)) if record else []
        return AboutUser(record, notes)

    async def find_viewers(self, text: str, *, limit: int = 20) -> list[UserRecord]:
        """Viewers whose name or id contains ``text``, most recently seen first (the dashboard's search)."""
        return await remember(self.memory.search_users(text, limit=limit))

    async def viewer_lines(self, platform: str, user_id: str, *, limit: int = 20) -> list[StoredMessage]:
        """A viewer's newest lines with their channel and time: what recall can find of them."""
        return await remember(self.memory.viewer_lines(platform, user_id, limit=limit))

    async def summary(self, platform: str, channel_id: str) -> Summary | None:
        """The channel's rolling summary, the newest one written."""
        return await remember(self.memory.latest_summary(platform, channel_id))

    async def handle(self, event: ChatEvent) -> Reply | None:
        """Hear a line and, if it addresses the character and may be answered, reply."""
        heard = await self.hear(event)
        if heard.blocked or not event.addresses_bot:
            return None
        return await self.reply(heard)

    # -- replying (engine.manager.replies) ----------------------------------------------------

    async def say(self, heard: HeardLine, text: str) -> Reply | None:
        """A fixed line the character says about ``heard`` (a reaction template, a command's text),
        checked and stored like a generated reply; None when nothing sayable is left."""
        return await self.replies.say(heard, text)

    async def reply(self, heard: HeardLine, *, hint: Hint | None = None) -> Reply | None:
        """The finished reply, or None; ``hint`` is an instruction for this reply only."""
        return await self.replies.reply(heard, hint=hint)

    def reply_stream(self, heard: HeardLine) -> AsyncIterator[str]:
        """Cumulative post-processed snapshots; a final ``""`` retracts what was shown."""
        return self.replies.reply_stream(heard)

    def generate(
        self, heard: HeardLine, *, snapshots: bool = True, hint: Hint | None = None
    ) -> AsyncGenerator[str | Reply, None]:
        """Cumulative post-processed snapshots, then the stored Reply (see ReplyPipeline.generate)."""
        return self.replies.generate(heard, snapshots=snapshots, hint=hint)

    async def decide(self, held_id: str, decision: Decision, text: str | None = None) -> None:
        """The streamer's decision on a held reply (approve-before-send)."""
        await self.replies.decide(held_id, decision, text)

    async def fallback_reply(self, event: ChatEvent, override: str | None = None) -> str | None:
        """The line to send after a BackendError, at most once per channel per cooldown; None: say nothing."""
        return await self.replies.fallback_reply(event, override)


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
