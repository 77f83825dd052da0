"""Discord's stream events: new members welcomed in a configured channel, the card's ``!`` commands
(real discord.py against the fake Discord, tests/fake_discord.py)."""

from __future__ import annotations

import asyncio

import pytest

from tests import test_discord
from tests.test_discord import MESSAGES, Stage

pytestmark = pytest.mark.timeout(60)

stage = test_discord.stage  # the fake Discord and its settings, shared with the chat tests


async def test_a_new_member_is_welcomed_in_the_configured_channel_and_remembered(stage: Stage) -> None:
    welcome = str(stage.discord.general.id)
    async with stage.bot(stage.with_discord(welcome_channel=welcome)):
        newcomer = await stage.discord.member_joins("nova")
        [sent] = await stage.discord.wait_for_calls("POST", MESSAGES)
    assert sent.path.endswith(f"/channels/{welcome}/messages")
    assert sent.json["content"] == "Welcome to the server, nova!"
    assert stage.lines_by(newcomer) == ["*joined the server*"]


@pytest.mark.parametrize("name", ["free-nitro.gift", "steam-gift.store", "scam.icu", "login.pw", "evil\u3002com"])
async def test_a_member_named_like_a_scam_link_is_welcomed_without_the_name(stage: Stage, name: str) -> None:
    welcome = str(stage.discord.general.id)
    async with stage.bot(stage.with_discord(welcome_channel=welcome)):
        await stage.discord.member_joins(name)
        [sent] = await stage.discord.wait_for_calls("POST", MESSAGES)
    assert sent.json["content"] == "Welcome to the server, friend!"


async def test_without_a_welcome_channel_a_join_is_not_announced(stage: Stage) -> None:
    async with stage.bot():
        await stage.discord.member_joins("quiet")
        await stage.discord.post_message(stage.viewer, stage.mention("hello"))
        await stage.discord.wait_for_calls("POST", MESSAGES)
    assert [m["content"] for m in stage.discord.sent_messages()] == ["Hello from the script!"]


async def test_the_cards_commands_work_with_user_levels(stage: Stage) -> None:
    async with stage.bot():
        await stage.discord.post_message(stage.viewer, "!hype the raid")  # Pip's !hype: moderators only
        await stage.discord.post_message(stage.viewer, "!lurk")
        await stage.discord.wait_for_calls("POST", MESSAGES)
        await asyncio.sleep(0.3)  # room for a wrongly allowed !hype to arrive too
    assert [m["content"] for m in stage.discord.sent_messages()] == [
        "Enjoy the lurk, ava! Pip will keep your seat warm."
    ]
    assert stage.backend.requests == []  # neither command reached the model or the reply path
