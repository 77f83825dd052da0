"""The reply pipeline: from a heard line to a checked, stored reply, one turn per channel at a time.

:meth:`ReplyPipeline.generate` runs a reply's turn: input moderation (for a line the character
chimes in on), the prompt (:class:`engine.manager.prompts.PromptWindows`), generation with its
timeout, post-processing and output moderation on every snapshot, one regeneration when a rule
asks for it, storing, and the stage and the control room around it (mutes, approve-before-send).
Replies in one channel are generated one at a time so history stays append-only; different
channels run concurrently up to ``COSTAR_BACKEND_MAX_CONCURRENCY``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace

from engine.backends.base import Backend, ChatMessage, GenerationRequest, TextStream
from engine.backends.read_ahead import ReadAhead
from engine.base.clock import Clock
from engine.base.cooldown import Cooldown
from engine.base.recent import RecentlyUsed
from engine.control.review import Decision
from engine.control.room import ControlRoom
from engine.errors import BackendError, BackendUnavailable, EngineError, ReviewRefused
from engine.events import ChatEvent, Reply
from engine.flow.activity import ReplyActivity
from engine.heard import HeardLine
from engine.manager.prompts import PromptWindows
from engine.manager.turns import ChannelTurn, remember
from engine.moderation.moderator import Moderator
from engine.observability.metrics import Metrics
from engine.output.limits import PlatformLimits
from engine.output.postprocess import cut_at_stops, past_max_length, postprocess
from engine.prompting.builder import BuiltPrompt
from engine.prompting.hints import Hint
from engine.serving.model_names import served_model_name
from engine.settings import Settings
from engine.stage.feed import Stage
from engine.stage.reply import StagedReply, notice_for
from memory import MemoryStore
from personas.card import PersonaCard
from personas.moderation_rules import Action

__all__ = ["ReplyPipeline"]

log = logging.getLogger(__name__)

# OpenAI-compatible servers accept at most 4 stop strings; the rest are applied in post-processing.
_MAX_REQUEST_STOPS = 4
# Said to the model before the one regeneration moderation allows; names no rule it could game.
_RETRY_HINT = (
    "Your previous reply was withheld by the chat filter. Reply again in character, briefly, "
    "without links, without slurs, and without repeating your instructions."
)


class ReplyPipeline:
    """Writes, checks and stores the character's replies (the manager's reply verbs)."""

    def __init__(
        self,
        *,
        settings: Settings,
        backend: Backend,
        memory: MemoryStore,
        moderator: Moderator,
        metrics: Metrics,
        clock: Clock,
        control: ControlRoom,
        stage: Stage,
        prompts: PromptWindows,
        read_ahead: ReadAhead,
        activity: ReplyActivity,
        turns: RecentlyUsed[str, ChannelTurn],
        platform_limits: dict[str, PlatformLimits],
        persona_for: Callable[[str, str, str | None], Awaitable[PersonaCard]],
        forgotten_since: Callable[[HeardLine], bool],
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.memory = memory
        self.moderator = moderator
        self.metrics = metrics
        self.control = control
        self.stage = stage
        self.prompts = prompts
        self.read_ahead = read_ahead
        self.activity = activity
        self.platform_limits = platform_limits
        self._turns = turns
        self._persona_for = persona_for
        self._forgotten_since = forgotten_since
        self._generation_slots = asyncio.Semaphore(settings.backend.max_concurrency)
        # Replies being stored: a forget starting now waits for them, then deletes them too.
        self.storing_replies: set[asyncio.Future[int]] = set()
        # One fallback line per channel per cooldown: a dead backend must not make a spam bot.
        self._fallback_cooldown: Cooldown[str] = Cooldown(settings.resilience.fallback_cooldown_s, clock=clock)

    async def say(self, heard: HeardLine, text: str) -> Reply | None:
        """A fixed line the character says about ``heard`` (a reaction template, a command's text).

        Post-processed and checked by output moderation exactly like a generated reply, and
        stored like one; None when nothing sayable is left.
        """
        event = heard.event
        if self.control.muted(event.channel_key):
            log.info("Not saying a fixed line in %s: muted", event.channel_key)
            return None
        persona = await self._persona_for(event.platform, event.channel_id, event.server_id)
        limits = self.platform_limits.get(event.platform)
        finished = postprocess(text, style=persona.style, speaker_names=(persona.display_name,), limits=limits)
        verdict = self.moderator.check_output(finished, persona, event, may_regenerate=False)
        if not verdict.passes or not verdict.text:
            log.info("Not saying a fixed line in %s (%s)", event.channel_key, ", ".join(verdict.reasons) or "empty")
            self.metrics.drop("moderated_reply" if finished else "empty_reply")
            return None
        turn = self._turns.setdefault(event.channel_key, ChannelTurn)
        with turn.claimed():
            async with turn.lock:  # history stays append-only
                memory_id = await remember(
                    self.memory.record_reply(
                        event, persona_id=persona.persona_id, persona_name=persona.display_name, text=verdict.text
                    )
                )
        if self.on_stage(event):  # a reaction or a command's line shows on the overlay like a reply
            self.stage.publish(notice_for(self.stage, heard, persona, verdict.text))
        return Reply(event, verdict.text, persona.persona_id, persona.display_name, memory_id=memory_id)

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
        if not self.on_stage(heard.event):
            shown = False
            async for item in self.control.until_muted(channel, self._generate(heard, snapshots=snapshots, hint=hint)):
                shown = isinstance(item, str) and bool(item)
                yield item
            if shown and self.control.muted(channel):
                yield ""  # muted mid-reply: take back what the platform shows
            return
        event = heard.event
        staged = StagedReply(
            self.stage, heard, await self._persona_for(event.platform, event.channel_id, event.server_id)
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
        if self.on_stage(event):
            persona = await self._persona_for(event.platform, event.channel_id, event.server_id)
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
            await remember(self.memory.set_review(reply.memory_id, decision.value, text=text, draft=draft))
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
            persona = await self._persona_for(event.platform, event.channel_id, event.server_id)
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

    def on_stage(self, event: ChatEvent) -> bool:
        """Whether what is said to ``event`` goes on the stream: someone watches the stage (an
        overlay, a voice, OBS) and the conversation is not private. The one check for both."""
        return self.stage.watched and not event.private

    async def _generate(self, heard: HeardLine, *, snapshots: bool, hint: Hint | None) -> AsyncIterator[str | Reply]:
        event = heard.event
        if heard.redelivered:
            return  # its first delivery is the one answered
        timer = self.metrics.start_reply(event.platform)
        persona = await self._persona_for(event.platform, event.channel_id, event.server_id)
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
                built = await remember(self.prompts.build(event, persona))
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
            self.storing_replies.add(storing)  # a forget starting now waits for it, then deletes it
            storing.add_done_callback(self.storing_replies.discard)
            memory_id = await remember(storing)
            self.metrics.finish_reply(timer, persona.persona_id)
            yield replace(reply, memory_id=memory_id)
        self.read_ahead.heard(event)  # what was said during the reply, and the reply itself

    @asynccontextmanager
    async def _generation_turn(self, channel_key: str) -> AsyncIterator[None]:
        """One reply at a time per channel, MAX_CONCURRENCY across channels; waiting shows as queue depth."""
        async with AsyncExitStack() as held:
            held.enter_context(self.activity.reply())  # idle-time reflection yields at once
            turn = self._turns.setdefault(channel_key, ChannelTurn)
            held.enter_context(turn.claimed())
            with self.metrics.waiting_for_slot():
                await held.enter_async_context(turn.lock)
                await held.enter_async_context(self._generation_slots)
            with self.metrics.generating():
                yield

    async def fallback_reply(self, event: ChatEvent, override: str | None = None) -> str | None:
        """COSTAR_PROMPT_FALLBACK_REPLY (or an adapter's own ``override``) to send after a
        BackendError, at most once per channel per COSTAR_RESILIENCE_FALLBACK_COOLDOWN_S (a dead
        backend must not turn the character into a spam bot); None means say nothing. Platform
        fixes ('/' on Twitch) apply."""
        fallback = override or self.settings.prompt.fallback_reply
        if not fallback or not self._fallback_cooldown.try_use(event.channel_key):
            return None
        persona = await self._persona_for(event.platform, event.channel_id, event.server_id)
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
            repeated_phrase_penalty=persona.style.repeated_phrase_penalty,
            stop=stops,
            model=served_model_name(persona, self.settings.backend.model),
            adapter_path=self.prompts.adapter_path(persona),
            seed=self.settings.backend.seed,
            conversation=event.channel_key,
        )
        return replace(request, shorten=lambda: _without_older_half(request))


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
