"""The console as a person meets it: a line editor, replies drawn once, bad bytes, one line each."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
from collections.abc import AsyncIterator

import pytest
from prompt_toolkit import PromptSession
from prompt_toolkit.history import FileHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from prompt_toolkit.utils import get_cwidth

from bot.app import build_manager, close_manager
from bot.console.adapter import ConsoleAdapter
from bot.console.line import LiveLine
from engine.backends.base import Backend, GenerationRequest, TextStream
from engine.backends.scripted import ScriptedBackend


class _Screen(io.StringIO):
    """A tiny terminal: wraps at ``columns`` and understands CR, LF, cursor-up and clear-below."""

    def __init__(self, columns: int = 20) -> None:
        super().__init__()
        self.columns = columns

    def isatty(self) -> bool:
        return False

    def rows(self) -> list[str]:
        """The text left on screen, row by row (a wide character takes two cells)."""
        screen: list[list[str]] = [[]]
        row = col = 0
        tokens = re.findall(r"\x1b\[(\d*)([AJ])|(\r)|(\n)|(.)", self.getvalue(), flags=re.DOTALL)
        for count, code, cr, lf, char in tokens:
            if code == "A":
                row = max(0, row - int(count or 1))
            elif code == "J":
                del screen[row][col:]
                del screen[row + 1 :]
            elif cr:
                col = 0
            elif lf:
                row, col = row + 1, 0
            else:
                width = get_cwidth(char)
                if col + width > self.columns:
                    row, col = row + 1, 0
                while len(screen) <= row:
                    screen.append([])
                cells = screen[row] + [""] * max(0, col + width - len(screen[row]))
                cells[col : col + width] = [char] + [""] * (width - 1)
                screen[row], col = cells, col + width
            while len(screen) <= row:
                screen.append([])
        return [text for text in ("".join(cells) for cells in screen) if text.strip()]


def test_a_redrawn_reply_wider_than_the_terminal_appears_once() -> None:
    screen = _Screen(columns=20)
    live = LiveLine(screen, "Pip: ", columns=lambda: screen.columns)
    live.show("Pip: welcome back to the stream, chat")  # wraps over two rows
    live.show("welcome back to the stream, chat!")  # the speaker label was stripped: redraw
    live.end()
    assert "".join(screen.rows()) == "Pip: welcome back to the stream, chat!"


def test_a_wide_character_reply_is_counted_in_columns_not_characters() -> None:
    screen = _Screen(columns=10)
    live = LiveLine(screen, "P: ", columns=lambda: screen.columns)
    live.show("ピップです")  # 5 characters, 10 columns: with the prefix, two rows
    live.retract()
    assert screen.rows() == []


class _Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


async def test_piped_replies_stay_one_line_each_even_when_the_model_writes_a_list(settings, counter) -> None:
    backend = ScriptedBackend(["Sure! Try these:\n1. Jump\n2. Dodge\n3.", "```python\nprint('hi')\n```\nthat's it"])
    manager = await build_manager(settings, backend=backend, counter=counter)
    out = _Pipe()
    try:
        await ConsoleAdapter(settings, manager, stdin=_Pipe("tips?\ncode?\n"), stdout=out).start()
    finally:
        await close_manager(manager)
    assert out.getvalue().splitlines() == ["Pip: Sure! Try these: 1. Jump 2. Dodge", "Pip: print('hi') that's it"]


async def test_invalid_utf8_input_becomes_replacement_characters_and_later_lines_are_answered(
    settings, counter
) -> None:
    # Python's own stdin in a UTF-8 or C locale: bad bytes arrive as lone surrogates.
    stdin = io.TextIOWrapper(io.BytesIO(b"caf\xe9 time\nstill there?\n"), encoding="utf-8", errors="surrogateescape")
    manager = await build_manager(settings, backend=ScriptedBackend(default="yes!"), counter=counter)
    out = _Pipe()
    try:
        await ConsoleAdapter(settings, manager, stdin=stdin, stdout=out).start()
        stored = await manager.memory.recent_messages("console", "local", limit=10)
    finally:
        await close_manager(manager)
    assert out.getvalue().splitlines() == ["Pip: yes!", "Pip: yes!"]
    assert [line.text for line in stored if not line.is_character] == ["caf\ufffd time", "still there?"]


class _StallsAfterAFewWords(Backend):
    name = "stalling"

    def stream(self, request: GenerationRequest) -> TextStream:
        return TextStream().attach(self._chunks())

    async def _chunks(self) -> AsyncIterator[str]:
        yield "Once upon a time"
        await asyncio.sleep(3600)
        yield " never"


@pytest.fixture
def keyboard():
    with create_pipe_input() as pipe:
        yield pipe


async def test_a_reply_that_times_out_half_way_is_taken_back_not_shown_then_refused(
    make_settings, counter, keyboard, capsys
) -> None:
    settings = make_settings(backend={"timeout_s": 0.5})
    manager = await build_manager(settings, backend=_StallsAfterAFewWords(), counter=counter)
    screen = _Screen(columns=200)
    editor: PromptSession[str] = PromptSession(input=keyboard, output=DummyOutput())
    keyboard.send_text("tell me a story\r")
    keyboard.close()  # then Ctrl-D: the session ends
    try:
        await ConsoleAdapter(settings, manager, stdout=screen, editor=editor).start()
    finally:
        await close_manager(manager)
    assert not any("Once upon a time" in row for row in screen.rows())
    assert "Pip could not answer: no reply within 0.5 s" in capsys.readouterr().err


async def _interactive_session(settings, counter, backend, typed: str, history_file) -> None:
    manager = await build_manager(settings, backend=backend, counter=counter)
    with create_pipe_input() as keyboard:
        editor: PromptSession[str] = PromptSession(
            input=keyboard, output=DummyOutput(), history=FileHistory(str(history_file))
        )
        keyboard.send_text(typed)
        keyboard.close()
        try:
            await ConsoleAdapter(settings, manager, stdout=_Screen(), editor=editor).start()
        finally:
            await close_manager(manager)


async def test_the_prompt_is_a_line_editor_whose_history_outlives_the_session(settings, counter, tmp_path) -> None:
    backend = ScriptedBackend(default="hi!")
    await _interactive_session(settings, counter, backend, "hello pip\r", tmp_path / "history")
    await _interactive_session(settings, counter, backend, "\x1b[A\r", tmp_path / "history")  # arrow up, enter
    said = [request.messages[-1].content.rsplit(": ", 1)[-1] for request in backend.requests]
    assert said == ["hello pip", "hello pip"]


async def test_forget_empties_the_console_history_on_disk_and_under_the_arrow_keys(settings, counter, tmp_path) -> None:
    backend = ScriptedBackend(default="noted!")
    history = tmp_path / "history"
    # The cat's name, /forget, then arrow-up + enter: nothing may come back to be sent again.
    await _interactive_session(settings, counter, backend, "my cat is called Miso\r/forget\r\x1b[A\r", history)
    said = [request.messages[-1].content for request in backend.requests]
    assert len(said) == 1 and "Miso" in said[0]
    assert "Miso" not in history.read_text(encoding="utf-8")


def test_the_console_history_file_is_readable_by_its_owner_only(settings) -> None:
    import stat

    from bot.console.adapter import _line_editor

    path = settings.core.data_dir / "console_history"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n# earlier\n+my cat is called Miso\n", encoding="utf-8")
    path.chmod(0o644)  # as an older costar left it
    _line_editor(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "Miso" in path.read_text(encoding="utf-8")  # kept, only protected


class _PressesCtrlCMidReply(_StallsAfterAFewWords):
    """Writes a few words, then the person at the terminal presses Ctrl-C (SIGINT to this process)."""

    async def _chunks(self) -> AsyncIterator[str]:
        yield "Once upon a time"
        await asyncio.sleep(0.2)  # the words are on screen
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.sleep(3600)
        yield " never"


@pytest.mark.timeout(30)
async def test_ctrl_c_during_a_reply_cuts_that_reply_keeps_it_as_cut_and_returns_to_the_prompt(
    settings, counter, keyboard
) -> None:
    manager = await build_manager(settings, backend=_PressesCtrlCMidReply(), counter=counter)
    screen = _Screen(columns=200)
    editor: PromptSession[str] = PromptSession(input=keyboard, output=DummyOutput())
    keyboard.send_text("tell me a story\r")
    keyboard.close()  # at the prompt again: Ctrl-D ends the session
    try:
        await ConsoleAdapter(settings, manager, stdout=screen, editor=editor).start()
        stored = await manager.memory.recent_messages("console", "local", limit=10)
    finally:
        await close_manager(manager)
    assert screen.rows()[-2:] == ["Pip: Once upon a time …", "[reply cut; Ctrl-C at the prompt quits]"]
    assert [line.text for line in stored if line.is_character] == ["Once upon a time …"]


async def test_a_stop_past_its_grace_prints_and_keeps_the_piped_reply_as_far_as_it_got(settings, counter) -> None:
    manager = await build_manager(settings, backend=_StallsAfterAFewWords(), counter=counter)
    out = _Pipe()
    console = ConsoleAdapter(settings, manager, stdin=_Pipe("tell me a story\n"), stdout=out)
    try:
        session = asyncio.create_task(console.start())
        async with asyncio.timeout(10):
            while not console._written:  # the first words are written (not printed: piped is one line)
                await asyncio.sleep(0.01)
        began = asyncio.get_running_loop().time()
        await console.drain(0.5)
        took_s = asyncio.get_running_loop().time() - began
        await asyncio.wait_for(session, 5)
        stored = await manager.memory.recent_messages("console", "local", limit=10)
    finally:
        await close_manager(manager)
    assert out.getvalue() == "Pip: Once upon a time …\n"
    assert [line.text for line in stored if line.is_character] == ["Once upon a time …"]
    assert took_s < 0.5 + 1.0, f"the stop took {took_s:.1f} s with a 0.5 s grace"
