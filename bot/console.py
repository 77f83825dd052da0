"""The local console adapter behind ``make run``: chat with the character in a terminal.

Interactive (a terminal): a prompt, replies streamed as they are generated, slash commands.
Piped (scripts, CI): one chat line per input line, one reply line per answer, exit at end of input.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from typing import TextIO

from bot.errors import one_line
from engine.errors import EngineError
from engine.events import ChatEvent, Role
from engine.manager import ConversationManager, HeardLine
from engine.settings import Settings

__all__ = ["ConsoleAdapter"]

PLATFORM = "console"
CHANNEL = "local"
HELP = "commands: /persona [NAME] · /personas · /about · /unnote N · /forget · /help · /quit"


class ConsoleAdapter:
    def __init__(
        self,
        settings: Settings,
        manager: ConversationManager,
        *,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
    ) -> None:
        self.settings = settings
        self.manager = manager
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.interactive = self.stdin.isatty()
        self.user = settings.core.console_user
        self._closed = False
        self._answering: asyncio.Task[None] | None = None

    def _say(self, text: str, end: str = "\n") -> None:
        self.stdout.write(text + end)
        self.stdout.flush()

    async def start(self) -> None:
        persona = await self.manager.persona_for(PLATFORM, CHANNEL)
        if self.interactive:
            self._say(f"{persona.display_name}: {persona.greeting}" if persona.greeting else HELP)
            self._say(f"({HELP})")
        while not self._closed:
            if self.interactive:
                self._say(f"{self.user}> ", end="")
            line = await self._read_line()
            if not line or self._closed:
                break  # end of input: a piped session is done
            text = line.strip()
            if not text:
                continue
            if text.startswith("/"):
                try:
                    if not await self._command(text):
                        break
                except EngineError as exc:
                    self._say(f"[{one_line(exc)}]")
                continue
            self._answering = asyncio.create_task(self._chat(text))
            await self._answering

    async def drain(self, grace_s: float) -> None:
        """Read no more lines; the reply being written gets ``grace_s`` to finish."""
        self._closed = True
        if self._answering is not None and not self._answering.done():
            await asyncio.wait({self._answering}, timeout=grace_s)

    async def close(self) -> None:
        self._closed = True

    async def _read_line(self) -> str:
        """The next input line, read in a daemon thread: a stop must not wait for the user to type.

        (A worker from asyncio.to_thread would keep the process alive at exit until Enter.)
        """
        loop = asyncio.get_running_loop()
        line: asyncio.Future[str] = loop.create_future()

        def deliver(result: str | BaseException) -> None:
            if line.done():
                return
            if isinstance(result, BaseException):
                line.set_exception(result)
            else:
                line.set_result(result)

        def read() -> None:
            try:
                result: str | BaseException = self.stdin.readline()
            except (OSError, ValueError) as exc:  # stdin closed under us
                result = exc
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
                loop.call_soon_threadsafe(deliver, result)

        threading.Thread(target=read, name="console-input", daemon=True).start()
        return await line

    async def _chat(self, text: str) -> None:
        event = ChatEvent(
            platform=PLATFORM,
            channel_id=CHANNEL,
            author_id=self.user,
            author_name=self.user,
            text=text,
            roles=frozenset({Role.BROADCASTER}),
            addresses_bot=True,
        )
        persona = await self.manager.persona_for(PLATFORM, CHANNEL)
        try:
            heard = await self.manager.hear(event)
            if heard.blocked:
                return  # stored, but the character stays quiet
            if self.interactive:
                await self._stream(heard, persona.display_name)
            else:
                reply = await self.manager.reply(heard)
                if reply is not None:
                    self._say(f"{reply.persona_name}: {reply.text}")
        except EngineError as exc:
            fallback = await self.manager.fallback_reply(event)
            if fallback:
                self._say(f"{persona.display_name}: {fallback}")
            print(f"[{persona.display_name} could not answer: {one_line(exc)}]", file=sys.stderr)

    async def _stream(self, heard: HeardLine, name: str) -> None:
        shown = ""
        self._say(f"{name}: ", end="")
        async for snapshot in self.manager.reply_stream(heard):
            if snapshot.startswith(shown):
                self._say(snapshot[len(shown) :], end="")
            else:  # post-processing rewrote the start (e.g. stripped a speaker label): redraw
                self._say(f"\r{name}: {snapshot}", end="")
            shown = snapshot
        self._say("")

    async def _command(self, text: str) -> bool:
        command, _, argument = text[1:].partition(" ")
        argument = argument.strip()
        if command in ("quit", "exit"):
            return False
        if command == "persona" and argument:
            try:
                card = await self.manager.switch_persona(PLATFORM, CHANNEL, argument, set_by=self.user)
                self._say(f"[persona switched to {card.display_name}]")
            except EngineError as exc:
                self._say(f"[{exc}]")
        elif command == "persona":
            card = await self.manager.persona_for(PLATFORM, CHANNEL)
            self._say(f"[current persona: {card.display_name} ({card.persona_id})]")
        elif command == "personas":
            self._say("[installed: " + ", ".join(self.manager.personas.names()) + "]")
        elif command == "about":
            about = await self.manager.about(PLATFORM, self.user)
            count = about.record.message_count if about.record else 0
            notes = "; ".join(f"#{note.id} {note.text}" for note in about.notes) or "none"
            self._say(f"[{self.user}: {count} messages remembered; notes: {notes}]")
        elif command == "unnote" and argument.isdigit():
            deleted = await self.manager.delete_note(PLATFORM, int(argument))
            self._say(f"[deleted note #{argument}]" if deleted else f"[no note #{argument}]")
        elif command == "forget":
            result = await self.manager.forget(PLATFORM, self.user)
            self._say(f"[forgot {result.messages} messages and {result.notes} notes]")
        else:
            self._say(f"[{HELP}]")
        return True
