"""The local console adapter behind ``make run``: chat with the character in a terminal.

Interactive (a terminal): a line editor with history (prompt_toolkit: arrows, Ctrl-R, the
history kept in DATA_DIR/console_history, readable by its owner only and emptied by ``/forget``),
replies streamed as they are generated, slash commands.
Piped (scripts, CI): one chat line per input line, one reply line per answer, exit at end of input.
Input that is not valid UTF-8 is read with replacement characters; it never stops the bot.

The console speaks as the broadcaster of its own channel, through the same chat session as
Twitch and Discord (:mod:`bot.session`: heard, the director, then answered in turn, one line at a
time, where live platforms queue for the reply scheduler), and the same commands
(:mod:`bot.commands`, typed with ``/``): the card's and COSTAR_STREAM_COMMANDS_FILE's ``!commands`` answer, ``/event
raid 50 from SomeStreamer`` fires a stream event to see its reaction, and with ``--live`` (or
``/live``) the channel counts as live, so timers and proactive talk run.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bot.commands import PlatformCommands
from bot.console.events import parse_console_event
from bot.console.line import LiveLine
from bot.console.settings import CONSOLE, console_settings
from bot.errors import one_line
from bot.session import ChatSession, Taken
from engine.base.clock import Clock, MonotonicClock
from engine.errors import EngineError
from engine.events import ChatEvent, EventKind, Reply, Role
from engine.heard import HeardLine
from engine.manager import ConversationManager
from engine.output.limits import PlatformLimits
from engine.settings import Settings
from engine.stream.director import StreamDirector

if TYPE_CHECKING:  # the hearing package loads numpy; the console only needs the type
    from engine.hearing.listener import TalkToggle

__all__ = ["CONSOLE_LIMITS", "ConsoleAdapter"]

_CUT_S = 2.0  # a stop past its grace: how long cutting the reply (and storing it) may take
PLATFORM = CONSOLE
CHANNEL = "local"
# The terminal behind `make run`: one reply per line, so piped output stays one line per answer.
CONSOLE_LIMITS = PlatformLimits(single_line=True, neutralise_mass_mentions=False)
CONSOLE_CONTROLS = (
    "/event KIND [AMOUNT] [from NAME] · /live [on|off] · /talk [on|off|SECONDS] · /help · /quit · !commands"
)


class ConsoleAdapter:
    def __init__(
        self,
        settings: Settings,
        manager: ConversationManager,
        *,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        editor: Any | None = None,
        live: bool = False,
        clock: Clock | None = None,
        talk: TalkToggle | None = None,
    ) -> None:
        self.settings = settings
        self.talk = talk  # hearing's push-to-talk, when it runs in that mode
        self.manager = manager
        self.stdin = _replacing_bad_bytes(stdin or sys.stdin)
        self.stdout = stdout or sys.stdout
        self.interactive = editor is not None or self.stdin.isatty()
        self.user = console_settings(settings).user
        self._editor = editor  # a prompt_toolkit PromptSession; made on first use in a terminal
        self._closed = False
        self._answering: asyncio.Task[None] | None = None
        self._written = ""  # the reply being written, as far as it got
        self._cut_now = asyncio.Event()  # Ctrl-C during a reply, or a stop past its grace
        self._said = 0  # lines the director had printed, for their message ids
        self._live_line: LiveLine | None = None  # where the reply being written is shown
        clock = clock or MonotonicClock()
        self.commands = PlatformCommands(
            manager,
            clock=clock,
            cooldown_s=0.0,  # one person at a keyboard: nothing to hold back
            prefix="/",
            private_answers=True,
        )
        self.session = ChatSession(manager, self, platform=PLATFORM, settings=settings, clock=clock)
        self.director.set_live(PLATFORM, CHANNEL, live)

    @property
    def director(self) -> StreamDirector:
        return self.session.director

    # Snapshots even when piped (printed as one line at the end): a stop past its grace prints and
    # keeps the reply as far as it got.
    streams = True

    @property
    def help_text(self) -> str:
        return f"commands: {self.commands.help()} · {CONSOLE_CONTROLS}"

    def _say(self, text: str, end: str = "\n") -> None:
        self.stdout.write(text + end)
        self.stdout.flush()

    async def start(self) -> None:
        self.manager.warm(PLATFORM, CHANNEL)  # the persona's prompt is read while the user types
        await self.session.start()
        try:
            await self._converse()
        finally:
            await self.session.close()

    async def _converse(self) -> None:
        persona = await self.manager.persona_for(PLATFORM, CHANNEL)
        if self.interactive:
            self._say(f"{persona.display_name}: {persona.greeting}" if persona.greeting else self.help_text)
            self._say(f"({self.help_text})")
        while not self._closed:
            line = await self._read_line()
            if line is None or self._closed:
                break  # end of input (or Ctrl-D / Ctrl-C at the prompt), or a stop: the session is done
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
            await asyncio.wait({self._answering})  # a stop past its grace cuts it: no error here
            if not self._answering.cancelled():
                self._answering.result()  # anything but the cut is raised

    async def drain(self, grace_s: float) -> None:
        """Read no more lines; the reply being written gets ``grace_s`` to finish, then is cut:
        printed and stored as far as it got."""
        self._closed = True
        if self._answering is not None and not self._answering.done():
            await asyncio.wait({self._answering}, timeout=grace_s)
        if self._answering is not None and not self._answering.done():
            self._cut_now.set()
            await asyncio.wait({self._answering}, timeout=_CUT_S)

    async def close(self) -> None:
        self._closed = True
        await self.session.close()

    # -- the session's outlet ---------------------------------------------------------------

    async def send(self, channel_id: str, text: str, *, reply_to: str | None, said: Reply | None) -> str | None:
        """A reaction, card command answer or timer line, printed like a reply."""
        name = (
            said.persona_name if said is not None else (await self.manager.persona_for(PLATFORM, CHANNEL)).display_name
        )
        line = f"{name}: {text}"
        if self.interactive:  # above the prompt being edited, not through it
            from prompt_toolkit.application import run_in_terminal

            await run_in_terminal(lambda: self._say(line))
        else:
            self._say(line)
        self._said += 1
        return f"console-said-{self._said}"

    async def _read_line(self) -> str | None:
        if not self.interactive:
            line = await self._read_piped_line()
            return line or None
        if self._editor is None:
            self._editor = _line_editor(self.settings)
        try:
            text: str = await self._editor.prompt_async(f"{self.user}> ")
        except (EOFError, KeyboardInterrupt):
            return None
        return text

    async def _read_piped_line(self) -> str:
        """The next piped line, read in a daemon thread: a stop must not wait for the user to type.

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

    async def write_reply(self, heard: HeardLine, snapshots: AsyncIterator[str]) -> str | None:
        """Streamed onto the screen in a terminal; one line at the end when piped. Either way
        ``_written`` follows the text, so a cut can print and keep what was written."""
        live = self._live_line
        assert live is not None
        self._written = ""
        async for snapshot in snapshots:
            self._written = snapshot
            if self.interactive:
                live.show(snapshot)
        if not self.interactive and self._written:
            self._say(f"{live.prefix}{self._written}")
        live.end()
        return None  # nothing was sent anywhere: no platform id to link

    def _typed(self, text: str, *, addresses_bot: bool = False) -> ChatEvent:
        """A line the person at the console typed: the broadcaster, in the console's one channel."""
        return ChatEvent(
            platform=PLATFORM,
            channel_id=CHANNEL,
            author_id=self.user,
            author_name=self.user,
            text=text,
            roles=frozenset({Role.BROADCASTER}),
            addresses_bot=addresses_bot,
        )

    async def _chat(self, text: str) -> None:
        event = self._typed(text, addresses_bot=True)
        persona = await self.manager.persona_for(PLATFORM, CHANNEL)
        live = self._live_line = LiveLine(self.stdout, f"{persona.display_name}: ")
        try:
            taken = await self.session.take_line(event)
            if taken.taken is Taken.COMMAND:  # the channel's own !commands
                await self.director.join()  # its answer is printed before the next prompt
                return
            if taken.taken is not Taken.TO_ANSWER or taken.heard is None:
                return  # stored, but the character stays quiet
            heard = taken.heard
            writing = asyncio.ensure_future(self.session.answer(heard))
            if not await self._finished_unless_cut(writing):
                await self._cut(heard, writing, live, persona.display_name)
        except EngineError as exc:
            # Text already on screen that the character never finished is taken back: showing a
            # reply and then "could not answer" for it reads as two contradicting answers.
            live.retract()
            fallback = await self.manager.fallback_reply(event)
            if fallback:
                self._say(f"{persona.display_name}: {fallback}")
            print(f"[{persona.display_name} could not answer: {one_line(exc)}]", file=sys.stderr)

    async def _finished_unless_cut(self, writing: asyncio.Future[Reply | None]) -> bool:
        """Wait for the reply; False when Ctrl-C (in a terminal) or a stop cut it first.

        In a terminal the line editor owns Ctrl-C only while it prompts (and then Ctrl-C quits);
        while a reply is written, Ctrl-C is ours and stops just that reply.
        """
        self._cut_now.clear()
        loop = asyncio.get_running_loop()
        ctrl_c = False
        if self.interactive:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # no signals here
                loop.add_signal_handler(signal.SIGINT, self._cut_now.set)
                ctrl_c = True
        cut: asyncio.Future[Any] = asyncio.ensure_future(self._cut_now.wait())
        waiting: set[asyncio.Future[Any]] = {writing, cut}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cut.cancel()
            if ctrl_c:
                loop.remove_signal_handler(signal.SIGINT)
        if writing.done():
            writing.result()  # a backend error is raised here, for _chat to report
            return True
        return False

    async def _cut(self, heard: HeardLine, writing: asyncio.Future[Reply | None], live: LiveLine, name: str) -> None:
        """Stop the reply being written; what was written is shown and stored, marked as cut."""
        writing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writing
        written = self._written.strip()
        if not written:
            live.retract()
            return
        cut_text = f"{written} …"
        if self.interactive:
            live.show(cut_text)
            live.end()
            self._say("[reply cut; Ctrl-C at the prompt quits]")
        else:
            self._say(f"{name}: {cut_text}")
        await self.manager.say(heard, cut_text)

    async def _command(self, text: str) -> bool:
        """A ``/`` line: one of the shared commands (:mod:`bot.commands`) or a console control."""
        command, _, argument = text[1:].partition(" ")
        argument = argument.strip()
        if command in ("quit", "exit"):
            return False
        if self.commands.parse(text) is not None:
            await self._shared_command(text)
        elif command == "event":
            await self._fire_event(argument)
        elif command == "talk":
            self._talk(argument)
        elif command == "live":
            live = argument.casefold() not in ("off", "no", "false", "0")
            self.director.set_live(PLATFORM, CHANNEL, live)
            self._say("[live: timers and proactive talk run]" if live else "[offline: timers are paused]")
        else:
            self._say(f"[{self.help_text}]")
        return True

    async def _shared_command(self, text: str) -> None:
        event = self._typed(text)
        result = await self.commands.handle(event)
        if result is None:
            return
        if result.forgot and self._editor is not None:  # every line in it was typed by this one viewer
            await asyncio.to_thread(_forget_history, self._editor)
        if result.reply:
            self._say(f"[{result.reply}]")

    def _talk(self, argument: str) -> None:
        """``/talk`` or ``/talk on`` holds push-to-talk, ``/talk 20`` for 20 s at most, ``/talk off`` releases."""
        if self.talk is None:
            self._say("[push-to-talk is off: set COSTAR_HEARING_ENABLED=true and COSTAR_HEARING_ANSWER=push_to_talk]")
            return
        word = argument.casefold()
        if word in ("off", "no", "false", "0"):
            self.talk(False, None)
            self._say("[push-to-talk released: the host is not heard]")
            return
        try:
            for_s = float(word) if word not in ("", "on", "yes", "true") else None
        except ValueError:
            for_s = -1.0
        if for_s is not None and not 0 < for_s < float("inf"):
            self._say("[/talk holds push-to-talk: /talk on, /talk SECONDS (above 0) or /talk off]")
            return
        held_s = self.talk(True, for_s)
        self._say(f"[push-to-talk held: the host is heard for {held_s:g} s at most; /talk off releases]")

    async def _fire_event(self, argument: str) -> None:
        try:
            stream = parse_console_event(argument, PLATFORM, CHANNEL)
        except ValueError as exc:
            self._say(f"[{exc}]")
            return
        said_before = self.director.said.total()
        await self.director.take(await self.manager.hear(stream))
        await self.director.join()
        if stream.kind is EventKind.FOLLOW:  # welcomes gather the follows of a window into one line
            self._say(f"[follows are welcomed together after {self.settings.stream.follow_window_s:g} s]")
        elif self.director.said.total() == said_before:
            self._say(
                f"[no reaction to {stream.kind.value}: the card has none, it is cooling down,"
                " or COSTAR_STREAM_REACTIONS is off]"
            )


def _replacing_bad_bytes(stream: TextIO) -> TextIO:
    """Decode invalid UTF-8 as U+FFFD instead of failing (or smuggling surrogates into memory).

    Python reads a terminal's or a pipe's bytes with ``surrogateescape`` in the C/UTF-8 locale,
    which SQLite then refuses to store.
    """
    if isinstance(stream, io.TextIOWrapper) and stream.errors != "replace":
        stream.reconfigure(errors="replace")
    return stream


def _line_editor(settings: Settings) -> Any:
    from prompt_toolkit import PromptSession

    return PromptSession(history=_private_history(settings.core.data_dir / "console_history"))


def _private_history(path: Path) -> Any:
    """The console's line history, a file only its owner may read: it holds what was typed in chat."""
    from prompt_toolkit.history import FileHistory

    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # one an older costar wrote was world-readable (0644)
    finally:
        os.close(descriptor)
    return FileHistory(str(path))


def _forget_history(editor: Any) -> None:
    """Empty the line history, on disk and in the editor (arrow-up must not bring a line back)."""
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    history = getattr(editor, "history", None)
    if isinstance(history, FileHistory):
        with open(history.filename, "wb"):  # emptied in place: the file keeps its 0600 mode
            pass
        fresh: Any = FileHistory(history.filename)
    else:
        fresh = InMemoryHistory()
    editor.history = fresh
    editor.default_buffer.history = fresh
