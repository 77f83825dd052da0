"""The bot starts what is configured for the stream: the overlay, the voice, nothing else by default."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from bot.app import build_manager, close_manager
from bot.on_stream import OnStream
from engine.backends.scripted import ScriptedBackend
from engine.manager import ConversationManager
from engine.settings import Settings
from tests.on_stage import answer

VOICED_CARD = """
name: Sprout
description: A seedling who reads chat aloud.
overlay:
  name_color: "#ffcc00"
voice:
  engine: espeak-ng
  voice: en-gb
"""


async def test_nothing_starts_unless_configured(manager: ConversationManager, settings: Settings) -> None:
    on_stream = await OnStream.start(settings, manager)
    try:
        assert on_stream.overlay is None and on_stream.obs is None and on_stream.tasks == []
        assert not manager.stage.watched, "nobody watches, so Twitch replies skip the snapshot work"
    finally:
        await on_stream.close()


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="Debian's espeak-ng is not installed")
async def test_a_voiced_card_speaks_through_the_overlay_and_into_the_folder(
    make_settings: Callable[..., Settings], scripted: ScriptedBackend, counter, tmp_path: Path
) -> None:
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "sprout.yaml").write_text(VOICED_CARD)
    settings = make_settings(
        core={"personas_dir": cards, "default_persona": "sprout"},
        overlay={"port": 0},
        voice={"out_dir": tmp_path / "spoken"},
    )
    manager = await build_manager(settings, backend=scripted, counter=counter)
    on_stream = await OnStream.start(settings, manager)
    try:
        assert on_stream.overlay is not None
        feed_url = f"{on_stream.overlay.base}/overlay/feed"
        async with aiohttp.ClientSession() as session, session.ws_connect(feed_url) as feed:
            hello = await feed.receive_json()
            assert hello["personas"]["sprout"] == {"name_color": "#ffcc00"}
            scripted.enqueue(["Hello, gardeners. Lovely weather for growing."])
            await answer(manager, "sprout hi")
            kinds: list[str] = []
            async with asyncio.timeout(10):
                while kinds.count("audio") < 2:
                    kinds.append((await feed.receive_json())["type"])
        assert kinds[0] == "reply"
        assert sorted(path.name for path in (tmp_path / "spoken").iterdir()) == ["1-000.wav", "1-001.wav"]
    finally:
        await on_stream.close()
        await close_manager(manager)
