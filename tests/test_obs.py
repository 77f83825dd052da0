"""OBS control against a fake obs-websocket v5 server: what costar asks OBS to do, and when."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.obs_control import ObsControl, ObsUnavailable
from bot.twitch.adapter import TwitchAdapter
from engine.backends.scripted import ScriptedBackend
from engine.settings import ObsSettings, Settings
from engine.stage.cues import AudioCue, ReplyCue, ReplyState
from engine.stage.feed import Stage
from tests import test_twitch
from tests.fake_obs import FakeObs
from tests.fake_twitch import FakeTwitch, badge
from tests.test_twitch import CHANNEL, MOD, VIEWER, managed, store_bot_token, until


@pytest.fixture
async def obs() -> AsyncIterator[FakeObs]:
    server = FakeObs()
    await server.start()
    yield server
    await server.close()


def control(obs: FakeObs, **settings: Any) -> ObsControl:
    values: dict[str, Any] = {"url": obs.url, "password": obs.password, **settings}
    return ObsControl(ObsSettings.model_validate(values), Stage())


def reply(state: ReplyState, text: str = "Hello!") -> ReplyCue:
    return ReplyCue("1", "twitch:stream", "pip", "Pip", text, state)


async def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)


async def test_a_moderators_scene_switch_reaches_obs_after_the_sha256_handshake(obs: FakeObs) -> None:
    obs_control = control(obs)
    try:
        assert await obs_control.switch_scene("just CHATTING") == "Just chatting"
    finally:
        await obs_control.close()
    assert obs.identified == 1
    assert obs.requests == [("GetSceneList", {}), ("SetCurrentProgramScene", {"sceneName": "Just chatting"})]
    assert obs.program_scene == "Just chatting"


async def test_an_unknown_scene_is_refused_with_the_list_of_scenes(obs: FakeObs) -> None:
    obs_control = control(obs)
    try:
        with pytest.raises(ObsUnavailable, match="Gameplay, Just chatting"):
            await obs_control.switch_scene("Starting soon")
    finally:
        await obs_control.close()
    assert "SetCurrentProgramScene" not in obs.request_types()


async def test_a_wrong_password_is_refused_and_said_so(obs: FakeObs) -> None:
    obs_control = control(obs, password="wrong")
    with pytest.raises(ObsUnavailable, match="COSTAR_OBS_PASSWORD"):
        await obs_control.switch_scene("Gameplay")
    assert obs.refused == 1 and obs.requests == []


async def test_the_overlay_source_is_shown_while_the_character_speaks_and_hidden_after(obs: FakeObs) -> None:
    obs_control = control(obs, overlay_source="costar overlay", hide_after_s=0.3)
    following = asyncio.create_task(obs_control.run())
    stage = obs_control.stage
    try:
        await asyncio.sleep(0)  # subscribed
        stage.publish(reply(ReplyState.STREAMING, "Hel"))
        await wait_until(lambda: obs.enabled.get(("Gameplay", 7)) is True)
        stage.publish(reply(ReplyState.STREAMING, "Hello!"))
        stage.publish(reply(ReplyState.DONE))
        stage.publish(AudioCue("1", "twitch:stream", "pip", 0, "Hello!", b"", duration_s=0.5))
        await asyncio.sleep(0.5)
        assert obs.enabled[("Gameplay", 7)] is True, "still speaking: the audio lasts 0.5 s, then 0.3 s more"
        await wait_until(lambda: obs.enabled[("Gameplay", 7)] is False)
    finally:
        following.cancel()
        await obs_control.close()
    enabling = [body for kind, body in obs.requests if kind == "SetSceneItemEnabled"]
    assert enabling == [
        {"sceneName": "Gameplay", "sceneItemId": 7, "sceneItemEnabled": True},
        {"sceneName": "Gameplay", "sceneItemId": 7, "sceneItemEnabled": False},
    ], "one show and one hide per reply, not one per snapshot"


async def test_obs_being_closed_costs_the_bot_nothing() -> None:
    settings = ObsSettings(url="ws://127.0.0.1:9", overlay_source="costar overlay")
    obs_control = ObsControl(settings, Stage())
    with pytest.raises(ObsUnavailable, match="cannot reach OBS"):
        await obs_control.show_overlay(True)
    following = asyncio.create_task(obs_control.run())
    await asyncio.sleep(0)
    obs_control.stage.publish(reply(ReplyState.STREAMING))
    await asyncio.sleep(0.3)
    assert not following.done(), "a reply while OBS is closed is logged, and the stage is still followed"
    following.cancel()
    await obs_control.close()


# -- the moderator's chat command, through the real Twitch adapter -------------------------------

# The fake Twitch server and its settings, shared with the Twitch tests.
fake = test_twitch.fake
twitch_settings = test_twitch.twitch_settings


async def test_only_a_moderator_switches_the_scene_from_twitch_chat(
    obs: FakeObs, fake: FakeTwitch, twitch_settings: Callable[..., Settings]
) -> None:
    settings = twitch_settings()
    store_bot_token(settings, fake)
    obs_control = control(obs)
    async with managed(settings, ScriptedBackend()) as manager:
        adapter = TwitchAdapter(settings, manager, scenes=obs_control)
        task = asyncio.create_task(adapter.start())
        try:
            await asyncio.wait_for(adapter.ready.wait(), 15)
            await fake.chat(CHANNEL.id, VIEWER, "!scene Just chatting")
            await fake.chat(CHANNEL.id, MOD, "!scene just chatting", badges=[badge("moderator")])
            await until(lambda: len(fake.chat_messages) == 1)
        finally:
            await adapter.close()
            await asyncio.wait_for(task, 10)
            await obs_control.close()
    assert fake.chat_messages[0].message == "Scene: Just chatting."
    assert obs.request_types() == ["GetSceneList", "SetCurrentProgramScene"], "the viewer's command did nothing"
    assert obs.program_scene == "Just chatting"
