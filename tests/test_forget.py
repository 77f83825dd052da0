"""Forgetting a viewer is complete: nothing said to them before the forget is answered or stored after it,
their lines still waiting in the reply queue go, and no table keeps their chosen display name."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from bot.app import build_manager, close_manager
from bot.twitch_commands import ChatCommands
from engine.backends.scripted import ScriptedBackend
from engine.events import ChatEvent, Role
from engine.flow.clock import ManualClock
from engine.flow.ratelimit import SendReservation
from engine.flow.scheduler import Outcome, ReplyScheduler
from engine.heard import HeardLine

pytestmark = pytest.mark.timeout(60)


def said(text: str, author: str = "v1", *, number: int = 0, roles: frozenset[Role] = frozenset()) -> ChatEvent:
    return ChatEvent(
        platform="twitch",
        channel_id="stream",
        author_id=author,
        author_name=f"Name of {author}",
        text=text,
        message_id=f"{author}-{number}",
        roles=roles,
        addresses_bot=True,
    )


def rows(db_path, query: str) -> list[tuple]:
    with sqlite3.connect(db_path) as db:
        return db.execute(query).fetchall()


async def test_a_reply_being_written_when_the_viewer_is_forgotten_is_neither_stored_nor_shown(
    make_settings, counter
) -> None:
    settings = make_settings()
    backend = ScriptedBackend(["Your secret is safe with me: it is 42."], delay_s=0.3)
    manager = await build_manager(settings, backend=backend, counter=counter)
    try:
        heard = await manager.hear(said("pip, my secret is 42, remember it"))
        snapshots: list[str] = []

        async def watch() -> None:
            async for snapshot in manager.reply_stream(heard):
                snapshots.append(snapshot)

        replying = asyncio.create_task(watch())
        while not backend.requests:
            await asyncio.sleep(0.01)
        await manager.forget("twitch", "v1")  # while the model is still writing
        await replying
    finally:
        await close_manager(manager)
    assert snapshots == [] or snapshots[-1] == "", "whatever was shown is retracted"
    assert rows(settings.db_path, "SELECT text FROM messages") == [], "no row quotes the forgotten viewer"


async def test_a_line_heard_before_the_forget_is_not_answered_after_it(make_settings, counter) -> None:
    backend = ScriptedBackend(default="hello!")
    manager = await build_manager(make_settings(), backend=backend, counter=counter)
    try:
        early = await manager.hear(said("pip, are you there?", number=1))
        await manager.forget("twitch", "v1")
        late = await manager.hear(said("pip, hi again", number=2))  # said after the forget: a new start
        assert await manager.reply(early) is None
        assert backend.requests == [], "the model is not even asked"
        assert await manager.reply(late) is not None
    finally:
        await close_manager(manager)


async def test_the_forgotten_viewers_queued_lines_leave_the_reply_queue() -> None:
    outcomes: dict[str, Outcome] = {}

    async def never(heard: HeardLine, reservation: SendReservation | None) -> bool:
        raise AssertionError("nothing is answered in this test")

    scheduler = ReplyScheduler(
        never, clock=ManualClock(), on_outcome=lambda e, o: outcomes.__setitem__(e.message_id, o)
    )
    for number in range(3):
        scheduler.submit(HeardLine(said(f"pip question {number}", "v1", number=number)))
    scheduler.submit(HeardLine(said("pip, me too", "v2")))
    assert scheduler.drop_author("twitch", "v1") == 3
    assert [outcomes[f"v1-{n}"] for n in range(3)] == [Outcome.FORGOTTEN] * 3
    assert outcomes["v2-0"] is Outcome.QUEUED and scheduler.queued == 1
    await scheduler.close()


async def test_a_forgotten_moderator_is_no_longer_named_as_who_chose_the_persona(make_settings, counter) -> None:
    settings = make_settings()
    manager = await build_manager(settings, backend=ScriptedBackend(), counter=counter)
    commands = ChatCommands(manager, clock=ManualClock(), cooldown_s=0)
    moderator = said("!persona captain-brine", "mod7", roles=frozenset({Role.MODERATOR}))
    try:
        await manager.hear(moderator)
        result = await commands.handle(moderator)
        assert result is not None and result.persona_changed
        assert rows(settings.db_path, "SELECT set_by FROM persona_choices") == [("mod7",)], "an id, never a name"
        forgetting = said("!forgetme", "mod7", number=1)
        result = await commands.handle(forgetting)
        assert result is not None and result.forgot
    finally:
        await close_manager(manager)
    assert rows(settings.db_path, "SELECT set_by, persona_id FROM persona_choices") == [(None, "captain-brine")]
    assert not any("Name of mod7" in str(row) for row in rows(settings.db_path, "SELECT * FROM persona_choices"))
