"""Forgetting a viewer is complete: nothing said to them before the forget is answered or stored after it,
their lines still waiting in the reply queue go, and no table keeps their chosen display name."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from bot.app import build_manager, close_manager
from bot.commands import PlatformCommands
from engine.backends.scripted import ScriptedBackend
from engine.base.clock import ManualClock
from engine.events import ChatEvent, Role
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
    commands = PlatformCommands(manager, clock=ManualClock(), cooldown_s=0)
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


# -- what a forget takes from rows the viewer does not own (issue 25, item 6) --------------------

NAME = "Zephyrine"  # the forgotten viewer's display name: distinctive, so raw bytes can be searched
SECRET = "Whiskerbottom"  # their cat's name, said once by them and repeated by the character


def line(author: str, text: str, *, number: int, name: str | None = None, addressed: bool = False) -> ChatEvent:
    return ChatEvent(
        platform="twitch",
        channel_id="stream",
        author_id=author,
        author_name=name or author.title(),
        text=text,
        message_id=f"{author}-{number}",
        addresses_bot=addressed,
    )


async def _a_stream_that_mentions_zephyrine(manager) -> None:
    """Others' rows that name the viewer or repeat their words, through the manager's own verbs."""
    memory = manager.memory
    early = await manager.hear(line("bob", "pip do you like art?", number=1))
    await memory.record_reply(early.event, persona_id="pip", persona_name="Pip", text="Pixels are my whole world!")
    await manager.hear(line("zeph", f"my cat is called {SECRET}, and I love minecraft and pixels", number=2, name=NAME))
    await manager.hear(line("bob", "minecraft is the best", number=3))
    asked = await manager.hear(line("bob", "pip what is her cat called?", number=4))
    for reply in (f"Her cat is {SECRET}!", "Minecraft forever!", "More pixels!", "Hello Bob!"):
        await memory.record_reply(asked.event, persona_id="pip", persona_name="Pip", text=reply)
    follow = await manager.hear(line("cy", "*followed the channel*", number=5))
    await memory.record_reply(follow.event, persona_id="pip", persona_name="Pip", text=f"Welcome, Cy, {NAME} and Dee!")
    await manager.hear(line("gus", f"*gifted a sub to {NAME}*", number=6))
    await manager.hear(line("eve", f"@{NAME.lower()} you are funny, {NAME}ish jokes aside", number=7))


async def test_forget_redacts_the_name_in_others_rows_and_drops_replies_that_repeated_them(
    make_settings, counter
) -> None:
    settings = make_settings()
    manager = await build_manager(settings, backend=ScriptedBackend(), counter=counter)
    try:
        await _a_stream_that_mentions_zephyrine(manager)
        result = await manager.forget("twitch", "zeph")
    finally:
        await close_manager(manager)
    texts = [row[0] for row in rows(settings.db_path, "SELECT text FROM messages ORDER BY id")]
    assert result.redacted == 3
    assert texts == [
        "pip do you like art?",
        "Pixels are my whole world!",
        "minecraft is the best",
        "pip what is her cat called?",
        "Minecraft forever!",  # another viewer said it too: not only theirs
        "More pixels!",  # the character said it before they did: its own word
        "Hello Bob!",
        "*followed the channel*",
        "Welcome, Cy, someone and Dee!",
        "*gifted a sub to someone*",
        f"someone you are funny, {NAME}ish jokes aside",  # a longer word that starts with the name stays
    ]
    with sqlite3.connect(settings.db_path) as db:
        assert db.execute("SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?", (NAME,)).fetchall() == []
        found = db.execute("SELECT m.text FROM messages_fts f JOIN messages m ON m.id = f.rowid"
                           " WHERE messages_fts MATCH 'funny'").fetchall()  # fmt: skip
        assert found == [(texts[-1],)], "the index holds the redacted text"
        db.execute("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)")
    raw = b"".join(path.read_bytes() for path in settings.db_path.parent.glob(settings.db_path.name + "*"))
    assert NAME.lower().encode() not in raw.lower().replace(f"{NAME}ish".lower().encode(), b"")
    assert SECRET.lower().encode() not in raw.lower(), "their cat's name is in no page of the file"


async def test_forget_drops_the_viewers_stage_cues_still_queued_for_a_stalled_page(make_settings, counter) -> None:
    from engine.stage.cues import NoticeCue, ReplyCue

    manager = await build_manager(make_settings(), backend=ScriptedBackend(default="Sure thing!"), counter=counter)
    try:
        with manager.stage.subscribe() as stalled_page:  # never read: everything stays queued
            theirs = await manager.hear(line("zeph", "pip hi!", number=1, name=NAME, addressed=True))
            async for _ in manager.reply_stream(theirs):
                pass
            welcome = await manager.hear(line("cy", "*followed the channel*", number=2))
            await manager.say(welcome, f"Welcome, Cy and {NAME}!")
            bobs = await manager.hear(line("bob", "pip hello", number=3, addressed=True))
            async for _ in manager.reply_stream(bobs):
                pass
            queued_before = stalled_page.pending()
            await manager.forget("twitch", "zeph")
            left = [stalled_page._queue.get_nowait() for _ in range(stalled_page.pending())]
    finally:
        await close_manager(manager)
    assert queued_before > len(left) > 0
    assert all(isinstance(cue, ReplyCue | NoticeCue) and cue.viewer_id == "bob" for cue in left)
    assert not any(NAME in getattr(cue, "text", "") for cue in left)


async def test_forget_leaves_no_byte_of_the_viewers_vectors_in_the_database_wal_or_shm(
    make_settings, counter, tmp_path
) -> None:
    from memory.vectors import vector_bytes
    from tests.fake_embedder import WordHashEmbedder

    settings = make_settings()
    embedder = WordHashEmbedder()
    manager = await build_manager(settings, backend=ScriptedBackend(), counter=counter, embedder=embedder)
    secrets = [f"my secret number is {n} and my cat is called quokka{n}" for n in range(12)]
    try:
        for number, text in enumerate(secrets):
            await manager.hear(said(text, number=number))
            await manager.hear(said(f"i like trains, line {number}", "v2", number=number))
        await manager.hear(said("i met Name of v1 at the station", "v2", number=99))  # redacted by the forget
        assert manager.embeddings is not None
        await manager.embeddings.drain()
        notes = await manager.memory.notes_for("twitch", "v1")  # "my cat is called quokkaN" became notes
        from memory import NoteVector

        await manager.memory.add_note_vectors([NoteVector(note.id, embedder.embed([note.text])[0]) for note in notes])
        stored = rows(settings.db_path, "SELECT count(*) FROM message_vectors")[0][0]
        assert stored == 25 and rows(settings.db_path, "SELECT count(*) FROM note_vectors")[0][0] == len(notes) > 0
        await manager.forget("twitch", "v1")
        files = [path for path in tmp_path.iterdir() if path.name.startswith("costar.sqlite3")]
        raw = b"".join(path.read_bytes() for path in files)  # the database, its WAL and SHM as they are now
    finally:
        await close_manager(manager)
    for text in [*secrets, *(note.text for note in notes), "i met Name of v1 at the station"]:
        stored_as = vector_bytes(embedder.embed([text])[0])
        assert stored_as[:32] not in raw, f"a vector of {text!r} is still in the database files"
    assert rows(settings.db_path, "SELECT count(*) FROM message_vectors")[0][0] == 12, "the other viewer's stay"
    assert rows(settings.db_path, "SELECT text FROM messages WHERE text LIKE 'i met %'") == [
        ("i met someone at the station",)
    ]
    assert rows(settings.db_path, "SELECT count(*) FROM note_vectors")[0][0] == 0
