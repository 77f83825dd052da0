"""The Discord adapter end to end: the real discord.py client against a local fake Discord.

Each test starts ``tests.fake_discord.FakeDiscord`` on loopback, runs ``DiscordAdapter`` with the real
ConversationManager (a SQLite file in ``tmp_path``, a ``ScriptedBackend`` for the model) and asserts on
what the fake Discord received, on the prompt the backend got, or on rows in the database file.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from bot.app import build_manager, close_manager, configured_adapters
from bot.commands import PlatformCommands
from bot.discord.adapter import DiscordAdapter
from bot.discord.delivery import split_message
from bot.overlay.server import OverlayServer, card_styles
from engine.backends.base import Backend
from engine.backends.scripted import ScriptedBackend
from engine.errors import BackendUnavailable
from engine.events import ChatEvent
from engine.manager import ConversationManager
from engine.prompting.tokens import TokenCounter
from engine.settings import Settings
from tests.fake_discord import EPHEMERAL_FLAG, FakeDiscord, FakeUser
from tests.fault_backends import FaultyBackend
from tests.one_way_in import record_one_way_in

pytestmark = pytest.mark.timeout(60)

MESSAGES = r"/channels/\d+/messages"
EDITS = r"/channels/\d+/messages/\d+"

# A persona allowed long replies, so a 5,000-character model answer survives post-processing mostly intact.
LONGWIND_CARD = """\
name: Longwind
description: A storyteller who never stops talking.
style:
  max_reply_chars: 4000
  max_reply_tokens: 1024
  emoji: keep
"""


@dataclass
class Stage:
    """One fake Discord, one scripted model, one database file; bots come and go (restarts)."""

    discord: FakeDiscord
    backend: ScriptedBackend
    settings: Settings
    make_settings: Callable[..., Settings]
    counter: TokenCounter
    viewer: FakeUser
    moderator: FakeUser

    @asynccontextmanager
    async def bot(
        self, settings: Settings | None = None, backend: Backend | None = None
    ) -> AsyncIterator[ConversationManager]:
        settings = settings or self.settings
        manager = await build_manager(settings, backend=backend or self.backend, counter=self.counter)
        adapter = DiscordAdapter(settings, manager)
        connections = len(self.discord.identify_payloads) + 1
        running = asyncio.create_task(adapter.start())
        try:
            identified = asyncio.create_task(self.discord.wait_until_identified(connections))
            await asyncio.wait({identified, running}, return_when=asyncio.FIRST_COMPLETED)
            if running.done():
                identified.cancel()
                running.result()  # start() failed: show why
            await identified
            yield manager
        finally:
            await adapter.close()
            await running
            await close_manager(manager)

    def with_discord(self, **overrides: Any) -> Settings:
        return self.make_settings(
            core={"personas_dir": self.settings.core.personas_dir},
            discord={"token": "fake-token", "edit_interval_s": 0.05, "stream_replies": False, **overrides},
        )

    def mention(self, text: str) -> str:
        return f"<@{self.discord.bot_user.id}> {text}"

    def rows(self, query: str, *params: object) -> list[tuple]:
        """Read the SQLite file directly, as a second process would."""
        with sqlite3.connect(self.settings.db_path) as connection:
            return connection.execute(query, params).fetchall()

    def lines_by(self, user: FakeUser) -> list[str]:
        return [
            text
            for (text,) in self.rows(
                "SELECT m.text FROM messages m JOIN users u ON u.id = m.user_id"
                " WHERE u.platform = 'discord' AND u.platform_user_id = ? ORDER BY m.id",
                str(user.id),
            )
        ]

    def character_lines(self) -> list[str]:
        return [text for (text,) in self.rows("SELECT text FROM messages WHERE is_character = 1 ORDER BY id")]

    def system_prompt(self) -> str:
        return self.backend.requests[-1].messages[0].content


@pytest_asyncio.fixture(loop_scope="function")
async def stage(tmp_path: Path, make_settings: Callable[..., Settings], counter: TokenCounter) -> AsyncIterator[Stage]:
    personas = tmp_path / "personas"
    personas.mkdir()
    (personas / "longwind.yaml").write_text(LONGWIND_CARD)
    async with FakeDiscord() as discord_server:
        settings = make_settings(
            core={"personas_dir": personas},
            discord={"token": "fake-token", "edit_interval_s": 0.05, "stream_replies": False},
        )
        yield Stage(
            discord=discord_server,
            backend=ScriptedBackend(default="Hello from the script!"),
            settings=settings,
            make_settings=make_settings,
            counter=counter,
            viewer=discord_server.add_member("ava"),
            moderator=discord_server.add_member("mod-max", roles=(discord_server.moderator_role,)),
        )
        assert discord_server.unrouted == [], "the bot called routes the fake Discord does not model"


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """For state outside the fake (the database): poll until it holds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


# ---------------------------------------------------------------------------- answering


async def test_mention_gets_an_in_character_reply(stage: Stage) -> None:
    stage.backend.enqueue(["Ahoy Ava, welcome aboard the stream!"])
    async with stage.bot():
        asked = await stage.discord.post_message(stage.viewer, stage.mention("hi, who are you?"))
        [sent] = await stage.discord.wait_for_calls("POST", MESSAGES)
        [shown] = stage.discord.bot_messages(stage.discord.general.id)
        linked = [(shown["id"],)]  # the stored reply knows its Discord message (for reply chains)
        await eventually(
            lambda: stage.rows("SELECT platform_message_id FROM messages WHERE is_character = 1") == linked
        )
    assert sent.json["content"] == "Ahoy Ava, welcome aboard the stream!"
    assert sent.json["message_reference"]["message_id"] == asked
    assert "Pip" in stage.system_prompt(), "the default persona answers"
    assert "hi, who are you?" in stage.backend.requests[-1].messages[-1].content
    assert stage.character_lines() == ["Ahoy Ava, welcome aboard the stream!"]


async def test_every_message_goes_in_through_hear_and_the_sent_reply_is_linked(
    stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = record_one_way_in(monkeypatch)
    stage.backend.enqueue(["Ahoy Ava!"])
    async with stage.bot():
        lurking = await stage.discord.post_message(stage.viewer, "just watching")
        asked = await stage.discord.post_message(stage.viewer, stage.mention("hi, who are you?"))
        await stage.discord.wait_for_calls("POST", MESSAGES)
        await eventually(lambda: bool(calls.linked))
        [shown] = stage.discord.bot_messages(stage.discord.general.id)
    assert calls.heard == [str(lurking), str(asked)]
    assert calls.linked == [str(shown["id"])]
    assert calls.taken == [("discord", str(lurking)), ("discord", str(asked))], "through the one chat session"
    assert calls.answered == [str(asked)], "answered through the session's reply path, so its scheduler"


async def test_replies_wait_for_the_channels_send_limit_in_the_reply_scheduler(stage: Stage) -> None:
    stage.backend.enqueue(["first answer", "second answer"])
    settings = stage.with_discord(send_limit=1, send_window_s=60.0)
    async with stage.bot(settings):
        await stage.discord.post_message(stage.viewer, stage.mention("one?"))
        await stage.discord.post_message(stage.moderator, stage.mention("two?"))
        await stage.discord.wait_for_calls("POST", MESSAGES)
        await asyncio.sleep(0.5)  # room for a second reply past the limit to show up
        sent = [call.json["content"] for call in stage.discord.calls("POST", MESSAGES)]
    assert sent == ["first answer"], "one reply per window: the second waits in the scheduler's queue"


async def test_typing_indicator_is_shown_before_the_reply(stage: Stage) -> None:
    async with stage.bot():
        await stage.discord.post_message(stage.viewer, stage.mention("hello"))
        await stage.discord.wait_for_calls("POST", MESSAGES)
    paths = [(call.method, call.path) for call in stage.discord.requests]
    typing = paths.index(("POST", f"/channels/{stage.discord.general.id}/typing"))
    reply = paths.index(("POST", f"/channels/{stage.discord.general.id}/messages"))
    assert typing < reply


async def test_unaddressed_message_is_stored_but_not_answered(stage: Stage) -> None:
    async with stage.bot():
        await stage.discord.post_message(stage.viewer, "just lurking, great run today")
        asked = await stage.discord.post_message(stage.viewer, stage.mention("what level is this?"))
        await stage.discord.wait_for_calls("POST", MESSAGES)
        await asyncio.sleep(0.2)  # room for a wrong second answer to show up
    assert [call.json["message_reference"]["message_id"] for call in stage.discord.calls("POST", MESSAGES)] == [asked]
    assert len(stage.backend.requests) == 1
    assert stage.lines_by(stage.viewer) == ["just lurking, great run today", "@costar-bot what level is this?"]
    assert "just lurking, great run today" in "\n".join(m.content for m in stage.backend.requests[0].messages)


async def test_reply_to_the_bots_message_addresses_it(stage: Stage) -> None:
    stage.backend.enqueue(["First answer.", "Second answer."])
    async with stage.bot():
        await stage.discord.post_message(stage.viewer, stage.mention("tell me something"))
        [_first] = await stage.discord.wait_for_calls("POST", MESSAGES)
        bot_message = stage.discord.bot_messages(stage.discord.general.id)[0]
        await stage.discord.post_message(stage.viewer, "and then?", reply_to=int(bot_message["id"]))
        calls = await stage.discord.wait_for_calls("POST", MESSAGES, count=2)
    assert [call.json["content"] for call in calls] == ["First answer.", "Second answer."]


async def test_trigger_word_addresses_the_bot(stage: Stage) -> None:
    async with stage.bot(stage.with_discord(trigger_words="co-host, robot")):
        await stage.discord.post_message(stage.viewer, "hey Co-Host, are you watching this?")
        await stage.discord.wait_for_calls("POST", MESSAGES)
    assert len(stage.backend.requests) == 1


async def test_the_characters_name_addresses_the_bot(stage: Stage) -> None:
    async with stage.bot():
        await stage.discord.post_message(stage.viewer, "pipeline talk, not for the bot")
        await stage.discord.post_message(stage.viewer, "Pip, are you watching this?")
        [_sent] = await stage.discord.wait_for_calls("POST", MESSAGES)
    assert len(stage.backend.requests) == 1
    assert "Pip, are you watching this?" in stage.backend.requests[0].messages[-1].content


async def test_other_bots_are_stored_but_never_answered(stage: Stage) -> None:
    other_bot = stage.discord.add_member("statsbot", bot=True)
    async with stage.bot():
        await stage.discord.post_message(other_bot, stage.mention("ping"))
        await stage.discord.post_message(stage.viewer, stage.mention("hello"))
        await stage.discord.wait_for_calls("POST", MESSAGES)
        await asyncio.sleep(0.2)
    assert len(stage.discord.calls("POST", MESSAGES)) == 1
    assert stage.lines_by(other_bot) == ["@costar-bot ping"]


async def test_denied_channel_is_ignored_entirely(stage: Stage) -> None:
    off_topic = stage.discord.guild.channels[1]
    async with stage.bot(stage.with_discord(denied_channels=str(off_topic.id))):
        await stage.discord.post_message(stage.viewer, stage.mention("secret"), channel=off_topic)
        await stage.discord.post_message(stage.viewer, stage.mention("hello"))
        [reply] = await stage.discord.wait_for_calls("POST", MESSAGES)
        await asyncio.sleep(0.2)
    assert stage.discord.calls("POST", MESSAGES) == [reply]
    assert stage.lines_by(stage.viewer) == ["@costar-bot hello"]


async def test_direct_messages_are_ignored_unless_enabled(stage: Stage) -> None:
    async with stage.bot():
        await stage.discord.post_direct_message(stage.viewer, "psst, private question")
        await stage.discord.post_message(stage.viewer, stage.mention("hello"))
        await stage.discord.wait_for_calls("POST", MESSAGES)
    assert stage.lines_by(stage.viewer) == ["@costar-bot hello"]
    async with stage.bot(stage.with_discord(answer_dms=True)):
        await stage.discord.post_direct_message(stage.viewer, "psst, private question")
        await stage.discord.wait_for_calls("POST", MESSAGES, count=2)
    assert stage.lines_by(stage.viewer)[-1] == "psst, private question"


async def test_direct_messages_and_private_channels_never_reach_the_stream_overlay(stage: Stage) -> None:
    staff = stage.discord.guild.channels[1]
    settings = stage.with_discord(answer_dms=True, private_channels=str(staff.id))
    stage.backend.enqueue(["DM-REPLY your order ships Monday", "STAFF-REPLY noted", "PUBLIC-REPLY hello chat"])
    async with stage.bot(settings) as manager:
        overlay = OverlayServer(manager.stage, card_styles(manager.personas.cards))
        await overlay.start()
        try:
            async with aiohttp.ClientSession() as session, session.ws_connect(f"{overlay.base}/overlay/feed") as feed:
                assert (await feed.receive_json())["type"] == "hello"
                await stage.discord.post_direct_message(stage.viewer, "DM-LINE my address is 12 Elm St")
                await stage.discord.wait_for_calls("POST", MESSAGES)
                await stage.discord.post_message(stage.viewer, stage.mention("STAFF-LINE ban ann"), channel=staff)
                await stage.discord.wait_for_calls("POST", MESSAGES, count=2)
                await stage.discord.post_message(stage.viewer, stage.mention("PUBLIC-LINE hi"))
                cues = [await feed.receive_json(timeout=10)]
                # Cues arrive in publishing order: any private one would come before the public reply.
                while not (cues[-1].get("state") == "done" and "PUBLIC-REPLY" in cues[-1]["text"]):
                    cues.append(await feed.receive_json(timeout=10))
        finally:
            await overlay.close()
    shown = json.dumps(cues)
    assert "PUBLIC-LINE" in shown, "the public line is shown with its reply"
    for private in ("DM-LINE", "DM-REPLY", "STAFF-LINE", "STAFF-REPLY"):
        assert private not in shown, f"{private} reached the overlay"
    assert len(stage.discord.calls("POST", MESSAGES)) == 3, "private conversations are still answered in private"


# ---------------------------------------------------------------------------- replies


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_long_reply_arrives_as_ordered_messages_within_the_limit(stage: Stage, stream: bool) -> None:
    sentences = [f"Sentence number {index} of a very long story about the stream." for index in range(90)]
    model_output = " ".join(sentences)
    assert len(model_output) > 5000
    stage.backend.enqueue([model_output])
    stage.backend.chunk_chars = 400
    async with stage.bot(stage.with_discord(stream_replies=stream)) as manager:
        await manager.switch_persona("discord", str(stage.discord.general.id), "longwind")
        await stage.discord.post_message(stage.viewer, stage.mention("tell me everything"))
        await eventually(lambda: len(stage.character_lines()) == 1)
        stored = stage.character_lines()[0]
        expected = split_message(stored, 2000)
        channel = stage.discord.general.id
        await stage.discord.wait_until(lambda: [m["content"] for m in stage.discord.bot_messages(channel)] == expected)
    assert len(stored) > 3000, "post-processing kept the long answer"
    assert len(expected) >= 2
    assert all(len(text) <= 2000 for text in expected)
    bodies = stage.discord.sent_messages() + stage.discord.message_edits()
    assert all(len(body["content"]) <= 2000 for body in bodies)
    shown = [message["content"] for message in stage.discord.bot_messages(channel)]
    assert " ".join(shown).split() == stored.split(), "every word, in story order"
    assert stage.discord.sent_messages()[0]["message_reference"] is not None
    assert all("message_reference" not in body for body in stage.discord.sent_messages()[1:]), "one reply ping"


async def test_streamed_reply_is_edited_in_place(stage: Stage) -> None:
    stage.backend.enqueue(["Well. " * 30 + "That is all."])
    stage.backend.chunk_chars = 6
    stage.backend.delay_s = 0.0
    async with stage.bot(stage.with_discord(stream_replies=True)):
        await stage.discord.post_message(stage.viewer, stage.mention("say something"))
        await eventually(lambda: len(stage.character_lines()) == 1)
        stored = stage.character_lines()[0]
        await stage.discord.wait_until(
            lambda: [m["content"] for m in stage.discord.bot_messages(stage.discord.general.id)] == [stored]
        )
    assert len(stage.discord.sent_messages()) == 1
    assert stage.discord.message_edits(), "the first words showed before the reply was complete"
    assert len(stage.discord.sent_messages()[0]["content"]) < len(stored)


async def test_model_output_cannot_ping_everyone_roles_or_other_users(stage: Stage) -> None:
    bystander = stage.discord.add_member("bystander")
    role = stage.discord.moderator_role
    stage.backend.enqueue([f"@everyone look! @here too, <@&{role.id}> and <@{bystander.id}>, hi!"])
    async with stage.bot(stage.with_discord(stream_replies=True)):
        await stage.discord.post_message(stage.viewer, stage.mention("make some noise"))
        await eventually(lambda: len(stage.character_lines()) == 1)
        stored = stage.character_lines()[0]
        await stage.discord.wait_until(
            lambda: [m["content"] for m in stage.discord.bot_messages(stage.discord.general.id)] == [stored]
        )
    bodies = stage.discord.sent_messages() + stage.discord.message_edits()
    assert bodies
    for body in bodies:
        assert body["allowed_mentions"] == {"parse": [], "users": [stage.viewer.id], "replied_user": True}


async def test_backend_failure_gets_the_configured_apology(stage: Stage) -> None:
    stage.backend.enqueue([BackendUnavailable("connection refused by 127.0.0.1:8000")])
    async with stage.bot(stage.with_discord(fallback_reply="Arr, my brain fell overboard. Ask again?")):
        await stage.discord.post_message(stage.viewer, stage.mention("hello?"))
        [sent] = await stage.discord.wait_for_calls("POST", MESSAGES)
    assert sent.json["content"] == "Arr, my brain fell overboard. Ask again?"


async def test_backend_failure_without_fallback_stays_silent(stage: Stage) -> None:
    stage.backend.enqueue([BackendUnavailable("connection refused"), "I'm back!"])
    async with stage.bot():
        await stage.discord.post_message(stage.viewer, stage.mention("hello?"))
        await stage.discord.post_message(stage.viewer, stage.mention("hello again?"))
        [sent] = await stage.discord.wait_for_calls("POST", MESSAGES)
    assert sent.json["content"] == "I'm back!"
    assert len(stage.backend.requests) == 2


async def test_slow_discord_edits_do_not_count_against_the_backend_timeout(stage: Stage) -> None:
    """The model finishes in time; Discord's edits are slow. The reply is shown whole and stored."""
    stage.backend.enqueue(["Well. " * 20 + "That is all."])
    stage.backend.chunk_chars = 12
    stage.discord.edit_delay_s = 0.25
    settings = stage.with_discord(stream_replies=True, edit_interval_s=0.0)
    settings.backend.timeout_s = 0.5  # far more than the model needs, far less than the edits take
    async with stage.bot(settings):
        await stage.discord.post_message(stage.viewer, stage.mention("say something"))
        await eventually(lambda: len(stage.character_lines()) == 1)
        stored = stage.character_lines()[0]
        await stage.discord.wait_until(
            lambda: [m["content"] for m in stage.discord.bot_messages(stage.discord.general.id)] == [stored]
        )
    assert len(stage.discord.message_edits()) >= 3, "the edits took longer than the backend timeout"
    assert stored.endswith("That is all.")


async def test_a_backend_timeout_mid_stream_retracts_the_half_reply_and_apologises(
    stage: Stage, caplog: pytest.LogCaptureFixture
) -> None:
    stalling = FaultyBackend(["stall"], reply="The first half arrives, and then the model goes quiet.", slow_s=5)
    settings = stage.with_discord(stream_replies=True, fallback_reply="Lost my train of thought, ask again?")
    settings.backend.timeout_s = 0.5
    async with stage.bot(settings, backend=stalling):
        await stage.discord.post_message(stage.viewer, stage.mention("tell me a story"))
        await stage.discord.wait_until(
            lambda: (
                [m["content"] for m in stage.discord.bot_messages(stage.discord.general.id)]
                == ["Lost my train of thought, ask again?"]
            )
        )
    [first, apology] = stage.discord.sent_messages()
    assert first["content"].startswith("The first half"), "the half reply had been shown"
    assert apology["content"] == "Lost my train of thought, ask again?"
    assert stage.character_lines() == [], "a reply cut short is not stored"
    assert any("no reply in discord channel" in record.getMessage() for record in caplog.records)


# ---------------------------------------------------------------------------- disconnects


def _counts(values: list[Any]) -> Counter[str]:
    return Counter(str(value) for value in values)


async def test_a_cut_gateway_resumes_and_replays_so_no_line_is_lost_or_answered_twice(stage: Stage) -> None:
    """discord.py RESUMEs with its session id and last sequence; the session replays what it missed.

    When Discord refuses the RESUME (INVALID_SESSION), discord.py IDENTIFYs again and carries on.
    """
    backend = ScriptedBackend([f"Answer number {n}." for n in range(20)], delay_s=0.3)
    viewers = [stage.viewer, stage.moderator, stage.discord.add_member("bea"), stage.discord.add_member("cy")]
    heard: list[int] = []
    asked: list[int] = []

    async def say(n: int, text: str, *, addressed: bool) -> None:
        content = stage.mention(text) if addressed else text
        heard.append(await stage.discord.post_message(viewers[n % len(viewers)], content))
        if addressed:
            asked.append(heard[-1])

    async with stage.bot(backend=backend):
        for n in range(3):
            await say(n, f"chatting away {n}", addressed=False)
            await say(n, f"question {n}?", addressed=True)
        await say(3, "one more before the cut?", addressed=True)
        await eventually(lambda: len(backend.requests) == 4)  # its reply is being written
        await stage.discord.cut_gateway()
        for n in range(3):  # chat goes on while the bot is away
            await say(n, f"while away {n}", addressed=False)
            await say(n, f"asked while away {n}?", addressed=True)
        await stage.discord.wait_until(lambda: len(stage.discord.resume_payloads) == 1)
        stage.discord.invalidate_resumes = True
        await eventually(lambda: len(stage.discord.sent_messages()) == len(asked), timeout=15)
        await stage.discord.cut_gateway()
        await stage.discord.wait_until_identified(connections=2)
        for n in range(3):
            await say(n, f"after a new session {n}?", addressed=True)
        await eventually(lambda: len(stage.discord.sent_messages()) == len(asked), timeout=15)
        await asyncio.sleep(0.3)  # room for a second answer to show up
    [resume] = stage.discord.resume_payloads[:1]
    assert resume["session_id"] == "session-0" and resume["seq"] > 0
    assert len(stage.discord.resume_payloads) == 2 and len(stage.discord.identify_payloads) == 2
    stored = [row[0] for row in stage.rows("SELECT platform_message_id FROM messages WHERE is_character = 0")]
    assert _counts(stored) == _counts(heard), "every line stored, none twice"
    answered = [m["message_reference"]["message_id"] for m in stage.discord.sent_messages()]
    assert _counts(answered) == _counts(asked), "every question answered exactly once"
    assert len(stage.character_lines()) == len(asked)


# ---------------------------------------------------------------------------- /persona


async def test_a_hung_send_gives_up_in_time_and_frees_the_turn_for_the_next_reply(stage: Stage) -> None:
    """Discord takes a message and never answers: the reply is dropped after DISCORD_SEND_TIMEOUT_S.

    A streamed reply holds its channel's turn and a generation slot while it is shown, so without
    the bound every later question would wait out discord.py's 5-minute HTTP timeout.
    """
    settings = stage.with_discord(stream_replies=True, send_timeout_s=0.5)
    settings.backend.max_concurrency = 1
    stage.backend.enqueue(["Lost in the void.", "This one arrives."])
    stage.discord.hang_sends = 1
    async with stage.bot(settings):
        await stage.discord.post_message(stage.viewer, stage.mention("first question"))
        await eventually(lambda: bool(stage.discord.hung_sends))
        asked = await stage.discord.post_message(stage.moderator, stage.mention("second question"))
        await stage.discord.wait_for_calls("POST", MESSAGES, timeout=5)
        await eventually(lambda: stage.character_lines() == ["This one arrives."], timeout=5)
    [hung] = stage.discord.hung_sends  # the first streamed words
    assert hung and "Lost in the void.".startswith(hung)
    [shown] = stage.discord.bot_messages(stage.discord.general.id)  # the hung one was never created
    assert (shown["content"], shown["message_reference"]["message_id"]) == ("This one arrives.", asked)
    assert stage.character_lines() == ["This one arrives."], "the dropped reply is not stored"


async def test_commands_sync_to_the_test_guild(stage: Stage) -> None:
    async with stage.bot(stage.with_discord(test_guild_id=stage.discord.guild.id)):
        [sync] = stage.discord.calls("PUT", rf"/applications/\d+/guilds/{stage.discord.guild.id}/commands")
    assert sorted(command["name"] for command in sync.json) == ["costar", "memory", "persona"]
    assert stage.discord.calls("PUT", r"/applications/\d+/commands") == [], "nothing global while testing"


async def test_commands_sync_globally_without_a_test_guild(stage: Stage) -> None:
    async with stage.bot():
        [sync] = stage.discord.calls("PUT", r"/applications/\d+/commands")
    persona = next(command for command in sync.json if command["name"] == "persona")
    assert sorted(option["name"] for option in persona["options"]) == ["list", "show", "switch"]


async def test_member_without_permission_cannot_switch_persona(stage: Stage) -> None:
    async with stage.bot() as manager:
        interaction = await stage.discord.run_slash_command(
            stage.viewer, "persona", "switch", {"name": "captain-brine"}
        )
        response = await stage.discord.interaction_response(interaction)
        persona = await manager.persona_for("discord", str(stage.discord.general.id), str(stage.discord.guild.id))
    assert response["type"] == 4
    assert response["data"]["flags"] & EPHEMERAL_FLAG
    assert "Manage Server" in response["data"]["content"]
    assert persona.persona_id == "pip"


async def test_moderator_switch_changes_who_answers_next(stage: Stage) -> None:
    async with stage.bot():
        interaction = await stage.discord.run_slash_command(
            stage.moderator, "persona", "switch", {"name": "captain-brine"}
        )
        response = await stage.discord.interaction_response(interaction)
        await stage.discord.post_message(stage.viewer, stage.mention("who's there?"))
        await stage.discord.wait_for_calls("POST", MESSAGES)
    assert "Captain Brine" in response["data"]["content"]
    assert not response["data"].get("flags", 0) & EPHEMERAL_FLAG, "the channel sees the switch"
    assert "Captain Brine" in stage.system_prompt()
    assert "Pip" not in stage.system_prompt()


async def test_configured_role_may_switch_persona(stage: Stage) -> None:
    helpers = stage.discord.add_role("Stream Helpers")  # no Manage Server permission
    helper = stage.discord.add_member("helper-hal", roles=(helpers,))
    async with stage.bot(stage.with_discord(moderator_roles="stream helpers")) as manager:
        interaction = await stage.discord.run_slash_command(helper, "persona", "switch", {"name": "Captain Brine"})
        await stage.discord.interaction_response(interaction)
        persona = await manager.persona_for("discord", str(stage.discord.general.id), str(stage.discord.guild.id))
    assert persona.persona_id == "captain-brine"


async def test_switch_for_the_whole_server_applies_to_other_channels(stage: Stage) -> None:
    off_topic = stage.discord.guild.channels[1]
    async with stage.bot():
        options = {"name": "captain-brine", "scope": "server"}
        await stage.discord.interaction_response(
            await stage.discord.run_slash_command(stage.moderator, "persona", "switch", options)
        )
        await stage.discord.post_message(stage.viewer, stage.mention("ahoy?"), channel=off_topic)
        await stage.discord.wait_for_calls("POST", MESSAGES)
    assert "Captain Brine" in stage.system_prompt()


async def test_switch_to_an_unknown_persona_is_refused_privately(stage: Stage) -> None:
    async with stage.bot():
        interaction = await stage.discord.run_slash_command(stage.moderator, "persona", "switch", {"name": "gandalf"})
        response = await stage.discord.interaction_response(interaction)
    assert response["data"]["flags"] & EPHEMERAL_FLAG
    assert "captain-brine" in response["data"]["content"]


async def test_persona_name_is_autocompleted_from_installed_personas(stage: Stage) -> None:
    async with stage.bot():
        interaction = await stage.discord.run_slash_command(
            stage.viewer, "persona", "switch", {"name": "capt"}, autocomplete="name"
        )
        response = await stage.discord.interaction_response(interaction)
    assert response["type"] == 8  # APPLICATION_COMMAND_AUTOCOMPLETE_RESULT
    assert response["data"]["choices"] == [{"name": "Captain Brine", "value": "captain-brine"}]


async def test_persona_list_and_show_answer_privately(stage: Stage) -> None:
    async with stage.bot():
        listing = await stage.discord.interaction_response(
            await stage.discord.run_slash_command(stage.viewer, "persona", "list")
        )
        shown = await stage.discord.interaction_response(
            await stage.discord.run_slash_command(stage.viewer, "persona", "show")
        )
    assert listing["data"]["flags"] & EPHEMERAL_FLAG and shown["data"]["flags"] & EPHEMERAL_FLAG
    assert "captain-brine" in listing["data"]["content"] and "longwind" in listing["data"]["content"]
    assert "(`pip`)  ← here" in listing["data"]["content"]
    assert shown["data"]["content"].startswith("**Pip**")


async def test_channel_keeps_its_persona_after_a_restart(stage: Stage) -> None:
    async with stage.bot():
        interaction = await stage.discord.run_slash_command(
            stage.moderator, "persona", "switch", {"name": "captain-brine"}
        )
        await stage.discord.interaction_response(interaction)
    async with stage.bot():  # a new manager and client on the same database file
        await stage.discord.post_message(stage.viewer, stage.mention("still the captain?"))
        await stage.discord.wait_for_calls("POST", MESSAGES)
    assert len(stage.discord.identify_payloads) == 2
    assert "Captain Brine" in stage.system_prompt()


# ---------------------------------------------------------------------------- /memory


async def test_memory_forget_is_the_shared_forgetme_command_through_its_one_dispatch(
    stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoked: list[tuple[str, str, str]] = []
    invoke = PlatformCommands.invoke

    async def recording_invoke(self: PlatformCommands, name: str, event: ChatEvent, argument: str = "") -> Any:
        invoked.append((name, event.platform, event.author_id))
        return await invoke(self, name, event, argument)

    monkeypatch.setattr(PlatformCommands, "invoke", recording_invoke)
    async with stage.bot():
        interaction = await stage.discord.run_slash_command(stage.viewer, "memory", "forget")
        await stage.discord.interaction_response(interaction)
        await stage.discord.wait_for_calls("POST", r"/webhooks/\d+/[^/]+")
    assert invoked == [("forgetme", "discord", str(stage.viewer.id))], "the command Twitch types as !forgetme"


async def test_memory_forget_deletes_the_callers_rows_from_the_database(stage: Stage) -> None:
    async with stage.bot() as manager:
        await stage.discord.post_message(stage.viewer, "I love speedruns")
        await stage.discord.post_message(stage.moderator, "welcome ava")
        await stage.discord.post_message(stage.viewer, stage.mention("remember me?"))
        await stage.discord.wait_for_calls("POST", MESSAGES)
        await manager.memory.add_note("discord", str(stage.viewer.id), "plays on a Steam Deck")
        assert len(stage.lines_by(stage.viewer)) == 2
        interaction = await stage.discord.run_slash_command(stage.viewer, "memory", "forget")
        deferred = await stage.discord.interaction_response(interaction)
        [followup] = await stage.discord.wait_for_calls("POST", r"/webhooks/\d+/[^/]+")
    assert deferred["type"] == 5 and deferred["data"]["flags"] & EPHEMERAL_FLAG
    assert followup.json["flags"] & EPHEMERAL_FLAG
    # Two lines and the reply to them; the note noticed in "I love speedruns" and the one added.
    assert "forgot 3 messages and 2 notes" in followup.json["content"]
    assert stage.lines_by(stage.viewer) == []
    assert stage.rows("SELECT count(*) FROM notes") == [(0,)]
    assert stage.rows("SELECT count(*) FROM users WHERE platform_user_id = ?", str(stage.viewer.id)) == [(0,)]
    # Other people's lines stay, with the forgotten viewer's name redacted (docs/memory.md).
    assert stage.lines_by(stage.moderator) == ["welcome someone"]


async def test_memory_about_answers_privately(stage: Stage) -> None:
    async with stage.bot() as manager:
        await stage.discord.post_message(stage.viewer, "first time here!")
        await eventually(lambda: len(stage.lines_by(stage.viewer)) == 1)
        await manager.memory.add_note("discord", str(stage.viewer.id), "plays on a Steam Deck")
        interaction = await stage.discord.run_slash_command(stage.viewer, "memory", "about")
        response = await stage.discord.interaction_response(interaction)
    assert response["data"]["flags"] & EPHEMERAL_FLAG
    assert "**ava**" in response["data"]["content"]
    assert "plays on a Steam Deck" in response["data"]["content"]


async def test_a_moderator_deletes_one_note_and_a_viewer_cannot(stage: Stage) -> None:
    async with stage.bot() as manager:
        await stage.discord.post_message(stage.viewer, "my cat is called Miso")
        await stage.discord.post_message(stage.viewer, "I live in Porto")
        # Notes are written after the line itself is stored: wait for the notes, not the lines.
        await eventually(lambda: len(stage.rows("SELECT id FROM notes")) == 2)
        [cat, home] = await manager.memory.notes_for("discord", str(stage.viewer.id))
        shown = await stage.discord.run_slash_command(stage.viewer, "memory", "about")
        listing = (await stage.discord.interaction_response(shown))["data"]["content"]
        refused = await stage.discord.run_slash_command(stage.viewer, "memory", "unnote", {"note": cat.id})
        refusal = (await stage.discord.interaction_response(refused))["data"]["content"]
        done = await stage.discord.run_slash_command(stage.moderator, "memory", "unnote", {"note": cat.id})
        deleted = (await stage.discord.interaction_response(done))["data"]["content"]
        left = [note.text for note in await manager.memory.notes_for("discord", str(stage.viewer.id))]
    assert f"`#{cat.id}` my cat is called Miso" in listing and f"`#{home.id}` I live in Porto" in listing
    assert "Manage Server" in refusal
    assert deleted == f"Deleted note #{cat.id}."
    assert left == ["I live in Porto"]


async def test_a_moderator_sees_and_deletes_only_notes_from_their_own_server_never_a_dm(stage: Stage) -> None:
    async with stage.bot(stage.with_discord(answer_dms=True)) as manager:
        await stage.discord.post_direct_message(stage.viewer, "my cat is called Miso")
        await stage.discord.post_message(stage.viewer, "I live in Porto")
        await eventually(lambda: len(stage.rows("SELECT id FROM notes")) == 2)
        [told_in_dm] = [n for n in await manager.memory.notes_for("discord", str(stage.viewer.id)) if "Miso" in n.text]
        asked = await stage.discord.run_slash_command(stage.moderator, "memory", "about", {"viewer": stage.viewer})
        moderators_view = (await stage.discord.interaction_response(asked))["data"]["content"]
        own = await stage.discord.run_slash_command(stage.viewer, "memory", "about")
        viewers_view = (await stage.discord.interaction_response(own))["data"]["content"]
        unnote = {"note": told_in_dm.id}
        refused = await stage.discord.run_slash_command(stage.moderator, "memory", "unnote", unnote)
        refusal = (await stage.discord.interaction_response(refused))["data"]["content"]
        left = [note.text for note in await manager.memory.notes_for("discord", str(stage.viewer.id))]
    assert "I live in Porto" in moderators_view and "Miso" not in moderators_view
    assert "I live in Porto" in viewers_view and "my cat is called Miso" in viewers_view, "a viewer sees all of theirs"
    assert refusal == f"There is no note #{told_in_dm.id}."
    assert "my cat is called Miso" in left


# ---------------------------------------------------------------------------- wiring


async def test_costar_runs_the_discord_adapter_when_a_token_is_set(stage: Stage) -> None:
    manager = await build_manager(stage.settings, backend=stage.backend, counter=stage.counter)
    try:
        with_token = configured_adapters(stage.settings, manager)
        without_token = configured_adapters(stage.make_settings(), manager)
    finally:
        await close_manager(manager)
    assert [type(adapter) for adapter in with_token] == [DiscordAdapter]
    assert DiscordAdapter not in [type(adapter) for adapter in without_token]
