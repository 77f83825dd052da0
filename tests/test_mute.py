"""The mute (panic) button's promises (docs/dashboard.md#mute): every output stops within a second,
replies being written are cancelled, lines are still stored, and a mute survives a restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from bot.app import build_manager, close_manager
from engine.backends.scripted import ScriptedBackend
from engine.control.room import EVERYWHERE, ControlRoom
from engine.events import ChatEvent, EventKind, Reply
from engine.flow.scheduler import Outcome
from engine.heard import HeardLine
from engine.manager import ConversationManager
from engine.prompting.tokens import TokenCounter
from engine.settings import Settings
from engine.stage.cues import Cue, NoticeCue, ReplyCue, ReplyState
from engine.stage.feed import Subscription
from engine.stream.outlet import Utterance
from tests.fake_twitch import FakeTwitch
from tests.on_stage import answer, viewer_line

LONG_REPLY = "Ribbit, " * 40 + "that is all."


async def test_muting_cancels_a_reply_being_written_and_takes_it_off_the_stream(
    manager: ConversationManager, scripted: ScriptedBackend
) -> None:
    scripted.chunk_delay_s = 0.05  # about 2 s for the whole reply
    scripted.enqueue([LONG_REPLY])
    seen: list[tuple[float, Cue]] = []
    with manager.stage.subscribe(recorder(seen)):
        replying = asyncio.create_task(answer(manager, "pip, say something long"))
        while not any(isinstance(cue, ReplyCue) and cue.state is ReplyState.STREAMING for _, cue in seen):
            await asyncio.sleep(0.01)
        muted_at = time.perf_counter()
        await manager.mute("twitch:stream")
        said = await asyncio.wait_for(replying, 1.0)  # cancelled, not finished: well under the 2 s left
        await asyncio.sleep(0.3)
    assert said is None, "nothing is sent"
    after = [cue for at, cue in seen if at >= muted_at]
    assert after and all(isinstance(cue, ReplyCue) and cue.state is ReplyState.RETRACTED for cue in after)
    assert time.perf_counter() - muted_at < 1.5
    stored = await manager.memory.recent_messages("twitch", "stream", limit=10)
    assert [line.text for line in stored] == ["pip, say something long"], "heard and stored; no reply stored"


async def test_a_muted_channel_says_nothing_but_still_stores_what_it_hears(manager: ConversationManager) -> None:
    await manager.mute("twitch:stream")
    assert await answer(manager, "pip, are you there?") is None
    heard = await manager.hear(viewer_line("a raid is coming"))
    assert await manager.say(heard, "Welcome, raiders!") is None, "reactions, timers and commands' lines too"
    assert await manager.memory.count_messages() == 2
    assert await answer(manager, "pip, over here?", channel="other") is not None, "other channels still talk"


async def test_muting_takes_down_finished_captions_and_notices_still_on_screen(
    manager: ConversationManager, scripted: ScriptedBackend
) -> None:
    seen: list[tuple[float, Cue]] = []
    with manager.stage.subscribe(recorder(seen)):
        assert await answer(manager, "pip, hello") is not None
        await manager.say(HeardLine(viewer_line("raid!")), "Welcome, raiders!")
        await asyncio.sleep(0.05)
        shown = {cue.cue_id for _, cue in seen if isinstance(cue, NoticeCue | ReplyCue)}
        await manager.mute(EVERYWHERE)
        await asyncio.sleep(0.05)
    retracted = {cue.cue_id for _, cue in seen if isinstance(cue, ReplyCue) and cue.state is ReplyState.RETRACTED}
    assert shown and shown <= retracted, "the overlay clears every caption and the voice stops"


async def test_unmuting_lets_the_character_talk_again(manager: ConversationManager) -> None:
    await manager.mute(EVERYWHERE)
    assert await answer(manager, "pip?") is None
    await manager.mute(EVERYWHERE, muted=False)
    assert await answer(manager, "pip?") is not None


async def test_a_mute_survives_a_restart(
    make_settings: Callable[..., Settings], scripted: ScriptedBackend, counter: TokenCounter
) -> None:
    settings = make_settings()
    first = await build_manager(settings, backend=scripted, counter=counter)
    await first.mute("twitch:stream")
    await first.mute("discord")
    await first.mute("discord", muted=False)
    await close_manager(first)
    again = await build_manager(settings, backend=scripted, counter=counter)
    try:
        assert again.control.muted_scopes == ["twitch:stream"]
        assert await answer(again, "pip?") is None
    finally:
        await close_manager(again)


def recorder(seen: list[tuple[float, Cue]]) -> Callable[[Cue], bool]:
    """A stage listener that notes each cue with the time it was published (and queues none)."""

    def record(cue: Cue) -> bool:
        seen.append((time.perf_counter(), cue))
        return False

    return record


# -- on Twitch, through the fake server ----------------------------------------------------------

from tests.fake_discord import EPHEMERAL_FLAG  # noqa: E402
from tests.fake_twitch import FakeChatUser, badge  # noqa: E402
from tests.test_discord import Stage as DiscordStage  # noqa: E402
from tests.test_discord import stage  # noqa: E402
from tests.test_stream_director import Directed, directed, stream_event  # noqa: E402
from tests.test_twitch import (  # noqa: E402 - the Twitch fixtures, for the tests below only
    CHANNEL,
    VIEWER,
    TwitchSettings,
    fake,
    managed,
    running,
    store_bot_token,
    twitch_settings,
    until,
)

__all__ = ["directed", "fake", "stage", "twitch_settings"]  # fixtures used by name

MODERATOR = FakeChatUser("4000", "helper", "Helper")


async def test_a_twitch_reply_being_written_when_muted_is_never_sent(
    fake: FakeTwitch, twitch_settings: TwitchSettings
) -> None:
    settings = twitch_settings(reply_cooldown_s=0)
    store_bot_token(settings, fake)
    backend = ScriptedBackend([LONG_REPLY, "Back again!"], chunk_delay_s=0.05)
    async with managed(settings, backend) as manager, running(settings, manager) as adapter:
        with manager.control.watch() as watcher:
            await fake.chat(CHANNEL.id, VIEWER, "pip, tell me everything")
            await until(lambda: backend.requests)
            await manager.mute(f"twitch:{CHANNEL.id}")
            await asyncio.sleep(1.0)
            assert fake.chat_messages == [], "no send within a second of the mute (nor after)"
            await fake.chat(CHANNEL.id, VIEWER, "pip, hello?")
            items: list[dict[str, object]] = []
            while [item.get("outcome") for item in items].count("not_sent") < 2:  # both lines settled
                await watcher.wait()
                items += watcher.take()
            await asyncio.wait_for(adapter.scheduler.join(), 5)
            assert fake.chat_messages == []
            assert await manager.memory.count_messages() == 2, "both lines stored"
            outcomes = [item["outcome"] for item in items if item["type"] == "outcome"]
            assert outcomes == ["queued", "not_sent", "queued", "not_sent"], (
                "the dashboard says why neither was answered"
            )
            status = manager.control.status()
        await manager.mute(f"twitch:{CHANNEL.id}", muted=False)
        await fake.chat(CHANNEL.id, VIEWER, "pip, hello again?")
        await until(lambda: fake.chat_messages)
    assert status["platforms"]["twitch"]["queued"] == 0 and CHANNEL.id in status["platforms"]["twitch"]["budgets"]
    assert [message.message for message in fake.chat_messages] == ["Back again!"]


def mute_when(manager: ConversationManager, shown: Callable[[Cue], bool]) -> Subscription:
    """Mute everything at the very moment ``shown`` picks a cue being put on the stream: the
    race where the mute comes after a line was written and before it is sent."""

    def wants(cue: Cue) -> bool:
        if shown(cue):
            manager.control.set_muted(EVERYWHERE, True)
        return True

    return manager.stage.subscribe(wants)


async def test_a_reply_finished_just_as_the_mute_comes_is_not_returned_for_sending(
    manager: ConversationManager,
) -> None:
    with mute_when(manager, lambda cue: isinstance(cue, ReplyCue) and cue.state is ReplyState.DONE):
        assert await answer(manager, "pip, quick one") is None


async def test_a_reaction_written_just_as_the_mute_comes_is_not_sent(directed: Directed) -> None:
    manager, director, said, *_ = directed
    with mute_when(manager, lambda cue: isinstance(cue, NoticeCue)):
        await director.take(await manager.hear(stream_event(EventKind.RAID, "Ann", 10)))
        await director.join()
    assert said.utterances == []


async def test_a_twitch_line_waiting_for_send_room_when_muted_is_not_sent(
    fake: FakeTwitch, twitch_settings: TwitchSettings
) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    async with managed(settings, ScriptedBackend()) as manager, running(settings, manager) as adapter:
        budget = adapter.budget_for(CHANNEL.id)
        held = [budget.reserve() for _ in range(budget.limit)]  # sends in flight fill the window
        line = ChatEvent("twitch", CHANNEL.id, VIEWER.id, VIEWER.login, "raid!")
        waiting = asyncio.create_task(
            adapter.session._speak(Utterance(Reply(line, "Welcome, raiders!", "pip", "Pip"), "raid", urgent=True))
        )
        await asyncio.sleep(0.1)
        await manager.mute(line.channel_key)
        for reservation in held:
            assert reservation is not None
            reservation.cancel()  # room again
        assert await asyncio.wait_for(waiting, 5) is None
    assert fake.chat_messages == []


# -- the chat commands: !costar mute / unmute on Twitch, /costar mute / unmute on Discord --------------


async def test_a_twitch_moderator_mutes_and_unmutes_from_chat(
    fake: FakeTwitch, twitch_settings: TwitchSettings
) -> None:
    settings = twitch_settings(reply_cooldown_s=0)
    store_bot_token(settings, fake)
    backend = ScriptedBackend(["Back again!"])
    async with managed(settings, backend) as manager, running(settings, manager) as adapter:
        await fake.chat(CHANNEL.id, VIEWER, "!costar mute")  # not a moderator: nothing happens
        await fake.chat(CHANNEL.id, MODERATOR, "!costar mute", badges=[badge("moderator")])
        await until(lambda: manager.control.muted_scopes == [f"twitch:{CHANNEL.id}"])
        await fake.chat(CHANNEL.id, VIEWER, "pip, hello?")
        await until(lambda: adapter.scheduler.stats[Outcome.NOT_SENT] == 1)
        assert backend.requests == [], "a muted channel does not even ask the model"
        assert fake.chat_messages == [], "muted: not even the confirmation"
        await fake.chat(CHANNEL.id, MODERATOR, "!costar unmute", badges=[badge("moderator")])
        await until(lambda: fake.chat_messages)
        await fake.chat(CHANNEL.id, VIEWER, "pip, hello again?")
        await until(lambda: len(fake.chat_messages) == 2)
    assert [message.message for message in fake.chat_messages] == ["Unmuted: talking again.", "Back again!"]


async def test_a_twitch_viewer_cannot_mute(fake: FakeTwitch, twitch_settings: TwitchSettings) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    async with managed(settings, ScriptedBackend(["Still here!"])) as manager, running(settings, manager):
        await fake.chat(CHANNEL.id, VIEWER, "!costar mute")
        await fake.chat(CHANNEL.id, VIEWER, "pip?")
        await until(lambda: fake.chat_messages)
        assert manager.control.muted_scopes == []
    assert [message.message for message in fake.chat_messages] == ["Still here!"]


async def test_a_discord_moderator_mutes_the_channel_with_a_slash_command(stage: DiscordStage) -> None:
    async with stage.bot() as manager:
        refused = await stage.discord.interaction_response(
            await stage.discord.run_slash_command(stage.viewer, "costar", "mute")
        )
        assert manager.control.muted_scopes == []
        done = await stage.discord.interaction_response(
            await stage.discord.run_slash_command(stage.moderator, "costar", "mute")
        )
        assert manager.control.muted_scopes == [f"discord:{stage.discord.general.id}"]
        await stage.discord.post_message(stage.viewer, stage.mention("anyone there?"))
        await asyncio.sleep(1.0)
        assert stage.discord.bot_messages(stage.discord.general.id) == [], "nothing said while muted"
        await stage.discord.interaction_response(
            await stage.discord.run_slash_command(stage.moderator, "costar", "unmute")
        )
        assert manager.control.muted_scopes == []
    assert "Manage Server" in refused["data"]["content"]
    assert done["data"]["flags"] & EPHEMERAL_FLAG and "Muted" in done["data"]["content"]


async def test_a_snapshot_ready_in_the_same_instant_as_the_mute_is_never_shown() -> None:
    room = ControlRoom()

    async def snapshots() -> AsyncIterator[str]:
        yield "Ribbit"
        room.set_muted(EVERYWHERE, True)  # lands while the next snapshot is being made
        yield "Ribbit, ribbit"

    assert [item async for item in room.until_muted("twitch:stream", snapshots())] == ["Ribbit"]
