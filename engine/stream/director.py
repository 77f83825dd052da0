"""The stream director: what the character says on its own — to stream events, on timers, to the
channel's ``!commands`` and into a long silence — within the platform's send budget.

Adapters call it next to the chat flow:

    heard = await manager.hear(stream_event)      # stored, repeat deliveries marked
    await director.take(heard)                     # maybe a reaction, later
    ...
    heard = await manager.hear(chat_event)
    director.chat_heard(heard)                     # timers and proactive talk count chat lines
    if await director.command(heard): return       # one of the channel's own !commands

Everything said goes through the manager (``say`` for templates, ``reply`` with a hint for
prompts), so output moderation and memory treat it exactly like a reply, and leaves through the
adapter's :data:`~engine.stream.outlet.Speaker` as an :class:`~engine.stream.outlet.Utterance`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Coroutine, Iterable
from dataclasses import replace
from typing import Any, Protocol

from engine.base.clock import Clock
from engine.base.cooldown import Cooldown
from engine.base.recent import DEFAULT_CAPACITY
from engine.errors import EngineError
from engine.events import ChatEvent, EventKind, Reply
from engine.heard import HeardLine
from engine.prompting.hints import Hint
from engine.settings import StreamSettings
from engine.stream.activity import ChannelActivity, ChannelState
from engine.stream.aggregate import FollowBatch, FollowBatches
from engine.stream.commands import CommandCall, CustomCommands, load_channel_file
from engine.stream.outlet import Speaker, Utterance
from engine.stream.proactive import DEFAULT_HINT, ProactivePolicy
from engine.stream.render import Judge, event_fields, fill, join_names, prompt_hint, safe_event
from engine.stream.timers import TimerBoard
from personas.card import PersonaCard
from personas.stream import CustomCommand, Reaction, StreamTimer

__all__ = ["CoHost", "StreamDirector"]

log = logging.getLogger(__name__)

STAGE_AUTHOR = "costar:stage"  # the author of the stage directions timers and silences answer
_REDEMPTION_HINT = 'A viewer redeemed the channel-point reward "{reward}" with the line above: answer it in character.'


class CoHost(Protocol):
    """The manager's verbs the director speaks through (engine.manager.ConversationManager has them).

    A protocol, not the manager's class: the stream room sits below the manager and never imports it.
    """

    async def say(self, heard: HeardLine, text: str) -> Reply | None: ...
    async def reply(self, heard: HeardLine, *, hint: Hint | None = None) -> Reply | None: ...
    async def persona_for(self, platform: str, channel_id: str, server_id: str | None = None) -> PersonaCard: ...
    async def link_sent(self, reply: Reply, platform_message_id: str) -> None: ...
    def muted(self, channel_key: str) -> bool: ...
    def count_said(self, platform: str, kind: str) -> None: ...
    def harmful_text(self, text: str, persona: PersonaCard, channel_key: str) -> bool: ...
    def harmful_name(self, name: str, persona: PersonaCard, channel_key: str) -> bool: ...


class StreamDirector:
    def __init__(
        self,
        manager: CoHost,
        speak: Speaker,
        *,
        settings: StreamSettings,
        clock: Clock,
        tick_s: float = 1.0,
        channels_kept: int = DEFAULT_CAPACITY,
    ) -> None:
        self.manager = manager
        self.speak = speak
        self.settings = settings
        self.clock = clock
        self.tick_s = tick_s
        # Per-channel tables keep the COSTAR_CHANNELS_KEPT most recently active channels (live ones always).
        self.activity = ChannelActivity(clock, channels_kept=channels_kept)
        self.proactive = ProactivePolicy(
            self.activity,
            channels_kept=channels_kept,
            silence_s=settings.proactive_silence_s,
            per_hour=settings.proactive_per_hour,
            busy_lines=settings.proactive_busy_lines,
        )
        self.timers = TimerBoard(self.activity, channels_kept=channels_kept)
        self.commands = CustomCommands(clock)
        self.follows = FollowBatches(settings.follow_window_s, channels_kept=channels_kept)
        self.channel_file = load_channel_file(settings.commands_file)
        self.said: Counter[str] = Counter()  # utterances the platform took, by kind
        self._cooldowns: dict[float, Cooldown[tuple[str, str]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        if self._loop is None:
            self._loop = asyncio.create_task(self._run(), name="stream-director")

    async def close(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def join(self) -> None:
        """Wait until every reaction started so far has been said (or given up)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def channel_state(self) -> dict[str, int]:
        """Entries held per channel-keyed table (tests and benchmarks watch them stay bounded)."""
        return {
            "stream_activity": len(self.activity.channels),
            "stream_proactive": self.proactive.tracked(),
            "stream_timers": len(self.timers),
            "stream_follows": len(self.follows),
        }

    def set_live(self, platform: str, channel_id: str, live: bool, server_id: str | None = None) -> None:
        self.activity.set_live(platform, channel_id, live, server_id)

    # -- what adapters hand over ------------------------------------------------------------

    def chat_heard(self, heard: HeardLine) -> None:
        event = heard.event
        self.activity.line(event.platform, event.channel_id, event.server_id)

    async def take(self, heard: HeardLine) -> None:
        """A heard stream event: note it, and start its reaction if it gets one."""
        stream = heard.stream
        if stream is None or heard.redelivered:
            return
        if stream.kind in (EventKind.ONLINE, EventKind.OFFLINE):
            self.set_live(stream.platform, stream.channel_id, stream.kind is EventKind.ONLINE, stream.server_id)
        if not self.settings.reactions:
            return
        persona = await self._persona(heard.event)
        reactions = persona.reactions
        kind = stream.kind
        if kind is EventKind.GIFT and stream.group_id:
            return  # one gift of a bomb: the bomb's own thank-you covers it
        if kind is EventKind.CHEER and stream.amount < reactions.min_bits:
            return
        if kind is EventKind.REDEMPTION and reactions.answers_reward(stream.reward):
            self._spawn(self._answer_redemption(heard, persona))
            return
        if kind is EventKind.FOLLOW:
            if reactions.follow is not None:
                self.follows.add(stream, self.clock.now())
            return
        spec = reactions.for_kind(kind.value)
        if spec is None or not self._cooldown(spec.cooldown_s).try_use((heard.event.channel_key, kind.value)):
            return
        self._spawn(self._react(heard, persona, spec, event_fields(stream), kind.value))

    async def command(self, heard: HeardLine) -> bool:
        """True when the line is one of the channel's ``!commands`` (answered or swallowed)."""
        event = heard.event
        if not event.text.lstrip().startswith("!"):
            return False
        persona = await self._persona(event)
        ours, call = self.commands.match(event, self._commands_for(persona))
        if call is not None:
            self._spawn(self._run_command(heard, persona, call))
        return ours

    # -- reacting ---------------------------------------------------------------------------

    async def _react(
        self, heard: HeardLine, persona: PersonaCard, spec: Reaction, fields: dict[str, str], kind: str
    ) -> None:
        harmful = self._harmful(persona, heard.event.channel_key)
        if spec.template is not None:
            reply = await self.manager.say(heard, fill(spec.template, fields, harmful))
        else:
            assert heard.stream is not None and spec.prompt is not None
            # The model sees the event with forbidden names swapped out, so it cannot repeat them.
            safe = safe_event(heard.stream, harmful)
            reply = await self.manager.reply(
                HeardLine(safe.as_line(), stream=safe), hint=prompt_hint(spec.prompt, fields, harmful)
            )
        if reply is not None:
            await self._out(Utterance(reply, kind, urgent=True))

    async def _answer_redemption(self, heard: HeardLine, persona: PersonaCard) -> None:
        stream = heard.stream
        assert stream is not None
        question = replace(heard.event, text=stream.text or str(stream.reward), addresses_bot=True)
        hint = prompt_hint(
            _REDEMPTION_HINT, {"reward": stream.reward or ""}, self._harmful(persona, question.channel_key)
        )
        reply = await self.manager.reply(HeardLine(question, stream=stream), hint=hint)
        if reply is not None:
            await self._out(Utterance(reply, "redemption_answer", urgent=True))

    async def _welcome_follows(self, batch: FollowBatch) -> None:
        first = batch.first
        persona = await self._persona(first.as_line())
        spec = persona.reactions.follow
        if spec is None:
            self.follows.close(batch)
            return
        cooldown, key = self._cooldown(spec.cooldown_s), (first.channel_key, EventKind.FOLLOW.value)
        if not cooldown.ready(key):
            self.follows.postpone(batch, cooldown.ends_at(key))  # keep gathering names meanwhile
            return
        cooldown.trigger(key)
        self.follows.close(batch)
        harmful = self._harmful(persona, first.channel_key)
        fields = event_fields(first) | {
            "names": join_names(batch.names, batch.count, harmful),
            "count": str(batch.count),
        }
        self._spawn(self._react(HeardLine(first.as_line(), stream=first), persona, spec, fields, "follow"))

    # -- commands, timers, silence ----------------------------------------------------------

    def _commands_for(self, persona: PersonaCard) -> list[CustomCommand]:
        extra = {command.name for command in self.channel_file.commands}
        return [c for c in persona.commands if c.name not in extra] + self.channel_file.commands

    def _timers_for(self, persona: PersonaCard) -> list[StreamTimer]:
        extra = {timer.name for timer in self.channel_file.timers}
        return [t for t in persona.timers if t.name not in extra] + self.channel_file.timers

    async def _run_command(self, heard: HeardLine, persona: PersonaCard, call: CommandCall) -> None:
        event = heard.event
        if call.command is None:
            reply = await self.manager.say(heard, self._listing(persona))
        else:
            fields = {"user": event.author_name, "args": call.args}
            reply = await self._speak(heard, persona, call.command.template, call.command.prompt, fields, fields)
        if reply is not None:
            await self._out(Utterance(reply, "command", urgent=False, reply_to=event.message_id))

    def _listing(self, persona: PersonaCard) -> str:
        commands = [
            f"!{c.name}" + ("" if c.level == "everyone" else f" ({c.level})") for c in self._commands_for(persona)
        ]
        timers = [f"{t.name} (every {t.every_min:g} min)" for t in self._timers_for(persona)]
        return f"Commands: {', '.join(commands) or 'none'}. Timers: {', '.join(timers) or 'none'}."

    async def _speak(
        self,
        heard: HeardLine,
        persona: PersonaCard,
        template: str | None,
        prompt: str | None,
        fields: dict[str, str],
        viewer_chosen: Iterable[str] = (),
    ) -> Any:
        """``viewer_chosen``: the fields a viewer wrote (a command's ``{user}`` and ``{args}``), kept
        out of a prompt's system text; a timer's fields are all ours."""
        harmful = self._harmful(persona, heard.event.channel_key)
        if template is not None:
            return await self.manager.say(heard, fill(template, fields, harmful))
        return await self.manager.reply(heard, hint=prompt_hint(prompt or "", fields, harmful, viewer_chosen))

    async def _run(self) -> None:
        while True:
            await self.clock.sleep(self.tick_s)
            try:
                await self.tick()
            except EngineError as exc:  # memory or persona trouble: try again next tick
                log.warning("stream director: %s", exc)

    async def tick(self) -> None:
        """Welcome follows whose window closed, run due timers, break a long silence."""
        for batch in self.follows.due(self.clock.now()):
            await self._welcome_follows(batch)
        for key, state in self.activity.channels.items():
            if not state.live:
                continue  # timers and proactive talk only run while live
            persona = await self.manager.persona_for(state.platform, state.channel_id, state.server_id)
            for timer in self.timers.due(key, self._timers_for(persona)):
                self.timers.fired(key, timer)
                self._spawn(self._say_timer(state, persona, timer))
            if self.proactive.due(key):
                self.proactive.said(state)  # counted now, so the next tick does not start another
                self._spawn(self._talk(state, persona))

    async def _say_timer(self, state: ChannelState, persona: PersonaCard, timer: StreamTimer) -> None:
        heard = HeardLine(_stage_line(state, f"(timer: {timer.name})"))
        reply = await self._speak(heard, persona, timer.template, timer.prompt, {"user": "chat", "args": ""})
        if reply is not None:
            await self._out(Utterance(reply, "timer", urgent=False))

    async def _talk(self, state: ChannelState, persona: PersonaCard) -> None:
        heard = HeardLine(_stage_line(state, "(chat is quiet)"))
        reply = await self.manager.reply(heard, hint=Hint(persona.reactions.proactive or DEFAULT_HINT))
        if reply is not None:
            await self._out(Utterance(reply, "proactive", urgent=False))

    # -- out --------------------------------------------------------------------------------

    async def _out(self, utterance: Utterance) -> None:
        event = utterance.reply.event
        if self.manager.muted(event.channel_key):  # muted while it was being written
            return
        sent_id = await self.speak(utterance)
        if sent_id is None:
            return
        await self.manager.link_sent(utterance.reply, sent_id)
        self.manager.count_said(event.platform, utterance.kind)
        self.said[utterance.kind] += 1
        self.activity.spoke(event.platform, event.channel_id)

    # -- helpers ----------------------------------------------------------------------------

    async def _persona(self, event: ChatEvent) -> PersonaCard:
        return await self.manager.persona_for(event.platform, event.channel_id, event.server_id)

    def _harmful(self, persona: PersonaCard, channel_key: str) -> Judge:
        manager = self.manager
        return Judge(
            text=lambda text: manager.harmful_text(text, persona, channel_key),
            name=lambda name: manager.harmful_name(name, persona, channel_key),
        )

    def _cooldown(self, duration_s: float) -> Cooldown[tuple[str, str]]:
        if duration_s not in self._cooldowns:
            self._cooldowns[duration_s] = Cooldown(duration_s, clock=self.clock)
        return self._cooldowns[duration_s]

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(self._guarded(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guarded(work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except EngineError as exc:  # a failing model or memory costs this one line, nothing more
            log.warning("stream director: nothing said: %s", exc)
        except Exception:
            log.exception("stream director: saying something failed")


def _stage_line(state: ChannelState, text: str) -> ChatEvent:
    """A stage direction the character answers (never stored: only the answer is)."""
    return ChatEvent(
        platform=state.platform,
        channel_id=state.channel_id,
        author_id=STAGE_AUTHOR,
        author_name="Stage",
        text=text,
        server_id=state.server_id,
    )
