"""Notes and recalled lines stay in the place they were said (docs/memory.md, "Where a note is seen").

A viewer tells the character things in a DM, in a Discord server's public channel and in a channel
the streamer marked private; then asks about them elsewhere. The prompts the backend receives must
hold what was said in that place (or its server's public part) and nothing from a DM or another
server, whether it comes back as a note or through full-text recall.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

import pytest

from bot.app import build_manager, close_manager
from engine.backends.scripted import ScriptedBackend
from engine.events import ChatEvent
from engine.manager import ConversationManager
from engine.prompting.tokens import TokenCounter
from engine.settings import Settings
from memory import SqliteMemoryStore
from memory.migrations import MIGRATIONS

_ids = itertools.count()

DM = {"channel_id": "dm-ava", "private": True}
GUILD = {"channel_id": "general", "server_id": "guild-1"}
GUILD_CHAT = {"channel_id": "chat", "server_id": "guild-1"}
STAFF = {"channel_id": "staff", "server_id": "guild-1", "private": True}
OTHER_GUILD = {"channel_id": "lobby", "server_id": "guild-2"}


def said(
    text: str, place: Mapping[str, object], *, addressed: bool = False, platform: str = "discord", author: str = "ava"
) -> ChatEvent:
    return ChatEvent(
        platform=platform,
        author_id=f"id-{author}",
        author_name=author,
        text=text,
        message_id=f"m{next(_ids)}",
        addresses_bot=addressed,
        **place,  # type: ignore[arg-type]
    )


@pytest.fixture(params=[True, False], ids=["notes", "recall only"])
async def told(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings], counter: TokenCounter
) -> AsyncIterator[tuple[ConversationManager, ScriptedBackend]]:
    """Ava has told a DM, the server's public channel and its staff channel one thing each."""
    backend = ScriptedBackend(default="noted!")
    settings = make_settings(memory={"notes_from_disclosures": request.param})
    manager = await build_manager(settings, backend=backend, counter=counter)
    await manager.hear(said("my cat is called Miso", DM))
    await manager.hear(said("my dog is called Rex", GUILD))
    await manager.hear(said("my rabbit is called Pepper", STAFF))
    yield manager, backend
    await close_manager(manager)


async def prompt_in(told: tuple[ConversationManager, ScriptedBackend], place: Mapping[str, object]) -> str:
    manager, backend = told
    # Recall looks only before the channel's history window: someone spoke here first.
    await manager.hear(said("hello everyone", place, author="bo"))
    assert await manager.handle(said("pip, what are my cat, dog and rabbit called?", place, addressed=True))
    return "\n".join(message.content for message in backend.requests[-1].messages)


async def test_a_disclosure_made_in_a_dm_never_reaches_a_public_prompt(told) -> None:
    public = await prompt_in(told, GUILD_CHAT)
    assert "Rex" in public, "the server's own public disclosure is remembered in its other channels"
    assert "Miso" not in public, "the DM stays in the DM"
    assert "Pepper" not in public, "a private channel's disclosure stays in that channel"


async def test_another_server_sees_nothing_said_on_this_one(told) -> None:
    elsewhere = await prompt_in(told, OTHER_GUILD)
    assert not {"Miso", "Rex", "Pepper"} & set(elsewhere.replace(",", " ").replace('"', " ").split())


async def test_a_private_channel_sees_its_server_and_a_dm_sees_the_viewers_own_notes(told) -> None:
    staff = await prompt_in(told, STAFF)
    assert "Rex" in staff and "Miso" not in staff
    dm = await prompt_in(told, {"channel_id": "dm-ava-2", "private": True})  # only ava reads a DM answer
    assert "Rex" in dm and "Pepper" in dm


async def test_notes_from_before_places_were_kept_take_a_safe_place(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    in_dm = said("my cat is called Miso", DM)
    async with await SqliteMemoryStore.open(path) as store:
        for line in (
            in_dm,
            said("my dog is called Rex", GUILD),
            said("hi", {"channel_id": "stream"}, platform="twitch"),
        ):
            await store.record_message(line)
        dm_line = await store.message_id_for("discord", in_dm.message_id)
    with sqlite3.connect(path) as raw:  # as if migration 7 had never run: no places anywhere
        # Only 7 is undone: the later migrations (vectors, forget's index, note topics) stay applied.
        raw.execute("DELETE FROM schema_migrations WHERE version = 7")
        raw.execute("ALTER TABLE messages DROP COLUMN scope")
        raw.execute("ALTER TABLE notes DROP COLUMN scope")
        rows = [
            ("id-ava", "discord", "my cat is called Miso", dm_line),  # its line was a DM
            ("id-ava", "discord", "likes jazz", None),  # made by reflection: no line to tell where
            ("id-ava", "twitch", "plays the bass", None),  # Twitch has no DMs, and one channel was used
        ]
        for user, platform, text, source in rows:
            raw.execute(
                "INSERT INTO notes (user_id, text, created_at, kind, source_message_id) SELECT id, ?, ?, 'manual', ?"
                " FROM users WHERE platform = ? AND platform_user_id = ?",
                (text, "2026-01-01T00:00:00+00:00", source, platform, user),
            )
    async with await SqliteMemoryStore.open(path) as store:
        assert await store.schema_version() == MIGRATIONS[-1].version
        places = {note.text: note.place for note in await store.notes_for("discord", "id-ava")}
        twitch = {note.text: note.place for note in await store.notes_for("twitch", "id-ava")}
        public = await store.notes_for("discord", "id-ava", seen_in="server:guild-1")
    assert places == {"my cat is called Miso": "dm:dm-ava", "likes jazz": "private"}
    assert twitch == {"plays the bass": "channel:stream"}
    assert public == [], "neither the DM's note nor one of unknown origin reaches a public prompt"


async def test_reflection_distils_each_place_from_its_own_lines_and_notes_it_there(
    make_settings: Callable[..., Settings], counter: TokenCounter
) -> None:
    backend = ScriptedBackend(default='{"facts": ["ava keeps pets"]}')
    settings = make_settings(memory={"reflect": True, "reflect_after_lines": 2, "notes_from_disclosures": False})
    manager = await build_manager(settings, backend=backend, counter=counter)
    assert manager.reflector is not None
    try:
        await manager.hear(said("I adopted a tortoise called Sheldon", DM))
        await manager.hear(said("he is ninety years old", DM))
        await manager.hear(said("the boss fight was wild", GUILD))
        await manager.hear(said("I play on a Steam Deck", GUILD))
        await asyncio.wait_for(manager.reflector.join(), 30)
        notes = await manager.memory.notes_for("discord", "id-ava")
    finally:
        await close_manager(manager)
    material = [request.messages[-1].content for request in backend.requests]
    assert len(material) == 2
    dm, public = sorted(material, key=lambda text: "Sheldon" not in text)
    assert "Sheldon" in dm and "Steam Deck" not in dm
    assert "Steam Deck" in public and "Sheldon" not in public and "ninety" not in public
    assert sorted(note.place for note in notes) == ["dm:dm-ava", "server:guild-1"]
