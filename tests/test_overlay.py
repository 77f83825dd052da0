"""The captions overlay as OBS loads it: Debian's headless Chromium on the page, a scripted reply.

Screenshots are taken with a transparent default background, as an OBS browser source composites
the page; the pixels are checked, not only the DOM.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from PIL import Image

from bot.overlay.server import OverlayServer, card_styles, overlay_token
from engine.backends.scripted import ScriptedBackend
from engine.errors import SettingsError
from engine.events import ChatEvent, EventKind, StreamEvent
from engine.manager import ConversationManager
from engine.settings import Settings
from engine.voice.speaker import Voice
from engine.voice.synth import EspeakSynthesizer
from tests.headless_chromium import Chromium, chromium_binary, launch_chromium
from tests.on_stage import answer, viewer_line

needs_chromium = pytest.mark.skipif(
    chromium_binary() is None,
    reason="Debian's chromium is not installed (make setup installs it with apt-get when run as root)",
)

REPLY = "Ahoy there, mossy_frog! The stream is cosy tonight. Pull up a lily pad and stay a while."
WHITE_TEXT_FLOOR = 235  # the default caption text colour is #ffffff; anti-aliasing dims the edges


@pytest.fixture
async def overlay(manager: ConversationManager) -> AsyncIterator[OverlayServer]:
    server = OverlayServer(manager.stage, card_styles(manager.personas.cards))
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Chromium]:
    async with launch_chromium(tmp_path / "chromium-profile") as chromium:
        yield chromium


def opaque_pixels(image: Image.Image) -> int:
    return sum(1 for alpha in image.getchannel("A").tobytes() if alpha > 0)


def text_pixels(image: Image.Image) -> int:
    """Pixels of the (white by default) caption text: opaque, and near white in every channel."""
    return sum(
        1
        for red, green, blue, alpha in zip(*(image.getchannel(band).tobytes() for band in "RGBA"), strict=True)
        if alpha > 200 and min(red, green, blue) >= WHITE_TEXT_FLOOR
    )


def caption_box(image: Image.Image) -> tuple[int, int, int, int]:
    box = image.getchannel("A").getbbox()
    assert box is not None, "nothing drawn at all"
    return box


# -- what a streamer sees -----------------------------------------------------------------------


@needs_chromium
async def test_a_streaming_reply_is_drawn_over_a_transparent_background(
    manager: ConversationManager, scripted: ScriptedBackend, overlay: OverlayServer, browser: Chromium, tmp_path: Path
) -> None:
    scripted.chunk_delay_s = 0.05  # a model's pace, so the page sees the reply grow
    scripted.enqueue([REPLY])
    await browser.open(f"{overlay.url}?line=1&fade=30")
    await browser.wait_for("window.costarOverlay.hellos === 1")

    replying = asyncio.create_task(answer(manager, "pip how is the stream tonight?"))
    await browser.wait_for("document.querySelector('.caption .text')?.textContent.includes('cosy')")
    partial = await browser.evaluate("document.querySelector('.caption .text').textContent")
    assert REPLY.startswith(partial) and partial != REPLY, "the caption grows with the reply"
    assert await replying == REPLY
    await browser.wait_for(f"document.querySelector('.caption .text').textContent === {json.dumps(REPLY)}")

    shot = await browser.screenshot()
    shot.save(tmp_path / "overlay.png")
    width, height = shot.size
    left, top, right, bottom = caption_box(shot)
    assert bottom > height * 0.6, "the caption sits at the bottom by default"
    for corner in [(0, 0), (width - 1, 0), (0, height - 1), (width - 1, height - 1)]:
        assert shot.getchannel("A").getpixel(corner) == 0, f"the background at {corner} must be transparent"
    assert opaque_pixels(shot) < width * height * 0.5, "only the caption is drawn"
    assert text_pixels(shot.crop((left, top, right, bottom))) > 1500, "white caption text is drawn in the box"
    names = await browser.evaluate("document.querySelector('.caption .name').textContent")
    answering = await browser.evaluate("document.querySelector('.caption .answering').textContent")
    assert names == "Pip"
    assert answering == "mossy_frog: pip how is the stream tonight?"


@needs_chromium
async def test_a_retracted_reply_leaves_no_text_on_screen(
    make_settings: Callable[..., Settings], scripted: ScriptedBackend, counter, browser: Chromium, tmp_path: Path
) -> None:
    from bot.app import build_manager, close_manager

    settings = make_settings(moderation={"banned_words": "pineapple", "actions": "output_banned_word=drop"})
    manager = await build_manager(settings, backend=scripted, counter=counter)
    server = OverlayServer(manager.stage, card_styles(manager.personas.cards))
    await server.start()
    try:
        scripted.chunk_delay_s = 0.05
        scripted.enqueue(["Oh, I know a secret about that. The password is pineapple, obviously."])
        await browser.open(f"{server.url}?fade=30")
        await browser.wait_for("window.costarOverlay.hellos === 1")
        replying = asyncio.create_task(answer(manager, "pip tell me a secret"))
        await browser.wait_for("document.querySelector('.caption .text')?.textContent.includes('secret')")
        assert opaque_pixels(await browser.screenshot()) > 0, "the start of the reply was on screen"

        assert await replying is None, "moderation dropped the reply"
        await browser.wait_for("window.costarOverlay.received.some(cue => cue.state === 'retracted')")
        assert await browser.evaluate("document.querySelectorAll('.caption').length") == 0
        shot = await browser.screenshot()
        assert opaque_pixels(shot) == 0, "not a pixel of the withheld reply stays on screen"
        texts = await browser.evaluate("window.costarOverlay.received.map(cue => cue.text ?? '').join(' ')")
        assert "pineapple" not in texts, "the withheld word never reached the page"
    finally:
        await server.close()
        await close_manager(manager)


@needs_chromium
async def test_a_finished_reply_fades_out(
    manager: ConversationManager, scripted: ScriptedBackend, overlay: OverlayServer, browser: Chromium
) -> None:
    scripted.enqueue(["Short and sweet!"])
    await browser.open(f"{overlay.url}?fade=0.5")
    await browser.wait_for("window.costarOverlay.hellos === 1")
    await answer(manager, "pip say something short")
    await browser.wait_for("document.querySelectorAll('.caption').length === 1")
    await browser.wait_for("document.querySelectorAll('.caption').length === 0", timeout_s=5)
    assert opaque_pixels(await browser.screenshot()) == 0


@needs_chromium
async def test_url_parameters_and_the_card_style_the_caption(
    manager: ConversationManager, scripted: ScriptedBackend, browser: Chromium
) -> None:
    brine = manager.personas.get("captain-brine")
    assert brine is not None
    styles = card_styles(manager.personas.cards)
    styles["pip"] = {"color": "rgb(255, 200, 0)", "size": 20}
    server = OverlayServer(manager.stage, styles)
    await server.start()
    try:
        await browser.open(f"{server.url}?size=48&position=top-left&lines=2")
        await browser.wait_for("window.costarOverlay.hellos === 1")
        await answer(manager, "pip hello")
        await browser.wait_for("!!document.querySelector('.caption')")
        style = await browser.evaluate(
            "(() => { const s = getComputedStyle(document.querySelector('.caption'));"
            " const r = document.querySelector('.caption').getBoundingClientRect();"
            " return {color: s.color, size: s.fontSize, top: r.top, left: r.left}; })()"
        )
        assert style["color"] == "rgb(255, 200, 0)", "the card's colour applies"
        assert style["size"] == "48px", "the URL's size wins over the card's"
        assert style["top"] < 60 and style["left"] < 60, "position=top-left puts it in that corner"
    finally:
        await server.close()


@needs_chromium
async def test_the_page_reconnects_by_itself_after_the_bot_restarts(
    manager: ConversationManager, scripted: ScriptedBackend, browser: Chromium
) -> None:
    first = OverlayServer(manager.stage, {})
    await first.start()
    await browser.open(first.url)
    await browser.wait_for("window.costarOverlay.hellos === 1")
    await first.close()
    await browser.wait_for("window.costarOverlay.connected === false")

    second = OverlayServer(manager.stage, {}, port=first.port)  # the restarted bot, same address
    await second.start()
    try:
        await browser.wait_for("window.costarOverlay.hellos === 2", timeout_s=20)
        assert await browser.evaluate("window.costarOverlay.server") == second.instance
        scripted.enqueue(["Back again, and still here!"])
        await answer(manager, "pip are you back?")
        await browser.wait_for(
            "document.querySelector('.caption .text')?.textContent === 'Back again, and still here!'"
        )
    finally:
        await second.close()


# -- the feed itself ----------------------------------------------------------------------------


async def feed_cues(url: str, count: int, session: aiohttp.ClientSession) -> list[dict]:
    received: list[dict] = []
    async with session.ws_connect(url) as socket:
        while len(received) < count:
            received.append(await asyncio.wait_for(socket.receive_json(), 10))
    return received


async def test_the_feed_carries_the_replys_snapshots_in_order(
    manager: ConversationManager, scripted: ScriptedBackend, overlay: OverlayServer
) -> None:
    scripted.enqueue([REPLY])
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{overlay.base}/overlay/feed") as socket:
        hello = await socket.receive_json()
        assert hello["type"] == "hello" and hello["server"] == overlay.instance
        heard = await manager.hear(viewer_line("pip how are you?"))
        snapshots = [snapshot async for snapshot in manager.reply_stream(heard)]
        cues = [await asyncio.wait_for(socket.receive_json(), 5) for _ in range(len(snapshots) + 1)]
    assert [cue["text"] for cue in cues] == [*snapshots, REPLY]
    assert [cue["state"] for cue in cues] == ["streaming"] * len(snapshots) + ["done"]
    assert len(snapshots) > 5 and len({cue["id"] for cue in cues}) == 1


async def test_the_feed_narrows_to_the_personas_and_channels_asked_for(
    manager: ConversationManager, scripted: ScriptedBackend, overlay: OverlayServer
) -> None:
    await manager.switch_persona("twitch", "brine-channel", "captain-brine")
    async with aiohttp.ClientSession() as session:
        brine_only = f"{overlay.base}/overlay/feed?persona=captain-brine"
        pip_channel = f"{overlay.base}/overlay/feed?channel=twitch:stream"
        async with session.ws_connect(brine_only) as brine, session.ws_connect(pip_channel) as pip:
            await brine.receive_json(), await pip.receive_json()  # hellos
            scripted.enqueue(["Pip here!", "Arr, Brine here!"])
            await answer(manager, "pip hi")
            await answer(manager, "captain hi", channel="brine-channel")
            to_brine = await asyncio.wait_for(brine.receive_json(), 5)
            to_pip = await asyncio.wait_for(pip.receive_json(), 5)
    assert (to_brine["persona"], to_brine["channel"]) == ("captain-brine", "twitch:brine-channel")
    assert (to_pip["persona"], to_pip["channel"]) == ("pip", "twitch:stream")


async def test_beyond_loopback_the_url_needs_the_token_kept_across_restarts(
    make_settings: Callable[..., Settings], manager: ConversationManager
) -> None:
    settings = make_settings(overlay={"host": "0.0.0.0"})
    token = overlay_token(settings)
    assert token is not None and len(token) >= 32
    assert overlay_token(settings) == token, "a restarted bot keeps the URL pasted into OBS"
    assert (settings.core.data_dir / "overlay-token").stat().st_mode & 0o777 == 0o600, "only the bot's user reads it"
    assert overlay_token(make_settings(overlay={"host": "127.0.0.1"})) is None

    server = OverlayServer(manager.stage, {}, host="127.0.0.1", token=token)
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            for path in ("/overlay", "/overlay?token=wrong", "/overlay/feed"):
                async with session.get(f"{server.base}{path}") as response:
                    assert response.status == 403, path
            async with session.get(server.url) as response:
                assert response.status == 200 and "costarOverlay" in await response.text()
    finally:
        await server.close()


async def test_another_web_page_cannot_read_the_feed(overlay: OverlayServer) -> None:
    async with aiohttp.ClientSession() as session:
        evil = {"Origin": "https://evil.example"}
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(f"{overlay.base}/overlay/feed", headers=evil)
        own = {"Origin": overlay.base}
        async with session.ws_connect(f"{overlay.base}/overlay/feed", headers=own) as socket:
            assert (await socket.receive_json())["type"] == "hello"


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"Origin": "null"}, "a sandboxed iframe on any web site"),
        ({"Host": "evil.example:{port}", "Origin": "http://evil.example:{port}"}, "DNS rebinding"),
        ({"Host": "evil.example:{port}"}, "DNS rebinding, no Origin"),
        ({"Host": "127.0.0.1.evil.example:{port}"}, "a look-alike name"),
        ({"Origin": "http://127.0.0.1:{other}"}, "another page on this machine"),
    ],
)
async def test_the_feed_and_page_refuse_a_foreign_origin_or_host(
    overlay: OverlayServer, headers: dict[str, str], why: str
) -> None:
    sent = {name: value.format(port=overlay.port, other=overlay.port + 1) for name, value in headers.items()}
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"{overlay.base}/overlay/feed", headers=sent)
        assert refused.value.status == 403, why
        async with session.get(f"{overlay.base}/overlay", headers=sent) as page:
            assert page.status == 403, why


@pytest.mark.parametrize(
    "headers",
    [
        {},  # OBS's browser source
        {"Origin": "obsstudio"},
        {"Host": "localhost:{port}", "Origin": "http://localhost:{port}"},
        {"Host": "[::1]:{port}", "Origin": "http://[::1]:{port}"},
    ],
)
async def test_obs_and_the_overlays_own_page_read_the_feed(overlay: OverlayServer, headers: dict[str, str]) -> None:
    sent = {name: value.format(port=overlay.port) for name, value in headers.items()}
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{overlay.base}/overlay/feed", headers=sent) as socket,
    ):
        assert (await socket.receive_json())["type"] == "hello"


@pytest.mark.parametrize("kept", ["", "\n", "short-token"])
def test_an_empty_or_short_kept_token_is_refused_at_start_in_one_line(tmp_path: Path, kept: str) -> None:
    (tmp_path / "overlay-token").write_text(kept)
    env = {
        **os.environ,
        "COSTAR_DATA_DIR": str(tmp_path),
        "COSTAR_BACKEND_KIND": "scripted",
        "COSTAR_OVERLAY_HOST": "0.0.0.0",
        "COSTAR_OVERLAY_PORT": "0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "--env-file", str(tmp_path / "none.env"), "run", "--console"],
        input="hello Pip\n",
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("costar:")]
    assert "overlay-token" in line and "at least 16" in line and "Traceback" not in done.stderr
    assert done.stdout == "", "nothing was answered: the bot did not start"


@pytest.mark.parametrize("token", ["", "abc"])
async def test_a_public_overlay_never_starts_with_an_empty_or_short_token(
    manager: ConversationManager, make_settings: Callable[..., Settings], token: str
) -> None:
    with pytest.raises(SettingsError, match="at least 16"):
        overlay_token(make_settings(overlay={"host": "0.0.0.0", "token": token or "x"}))
    server = OverlayServer(manager.stage, {}, host="0.0.0.0", token=token)
    with pytest.raises(SettingsError, match="at least 16"):
        await server.start()


async def test_a_non_ascii_token_in_the_url_is_refused_not_a_server_error(manager: ConversationManager) -> None:
    server = OverlayServer(manager.stage, {}, host="127.0.0.1", token="s3cret-token-for-the-overlay")
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            for token in ("é", "s3cret-token-for-the-overlay\u00e9", "🎥"):
                async with session.get(f"{server.base}/overlay", params={"token": token}) as response:
                    assert response.status == 403, token
    finally:
        await server.close()


@needs_chromium
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="Debian's espeak-ng is not installed")
async def test_the_page_plays_the_voice_in_order_and_fades_only_after_it(
    manager: ConversationManager, scripted: ScriptedBackend, overlay: OverlayServer, browser: Chromium
) -> None:
    voice = Voice(manager.stage, lambda persona: EspeakSynthesizer(), metrics=manager.metrics)
    speaking = asyncio.create_task(voice.run())
    try:
        await browser.open(f"{overlay.url}?fade=0.2")
        await browser.wait_for("window.costarOverlay.hellos === 1")
        scripted.enqueue(["Hello there, friend. The pond is quiet tonight, and the frogs are asleep."])
        await answer(manager, "pip hi")
        await browser.wait_for("window.costarOverlay.played.length === 2", timeout_s=20)
        played = await browser.evaluate("window.costarOverlay.played.map(clip => clip.seq)")
        assert played == [0, 1], "sentences play one after the other, in order"
        assert await browser.evaluate("document.querySelectorAll('.caption').length") == 1, "still speaking"
        await browser.wait_for("document.querySelectorAll('.caption').length === 0", timeout_s=20)
    finally:
        speaking.cancel()


async def test_a_raid_thank_you_reaches_the_overlay_as_a_notice(
    manager: ConversationManager, overlay: OverlayServer
) -> None:
    raid = StreamEvent("twitch", "stream", EventKind.RAID, "raid-1", "bigraider", "BigRaider", amount=42)
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{overlay.base}/overlay/feed") as socket:
        await socket.receive_json()  # hello
        heard = await manager.hear(raid)
        said = await manager.say(heard, "Welcome raiders from BigRaider! 42 of you!")
        notice = await asyncio.wait_for(socket.receive_json(), 5)
    assert said is not None
    assert notice["type"] == "notice" and notice["kind"] == "raid"
    assert (notice["text"], notice["name"], notice["channel"]) == (said.text, "Pip", "twitch:stream")


@needs_chromium
async def test_preview_shows_a_sample_caption_in_the_default_characters_style_that_stays(
    manager: ConversationManager, browser: Chromium, tmp_path: Path
) -> None:
    server = OverlayServer(manager.stage, card_styles(manager.personas.cards), default_persona="pip")
    await server.start()
    try:
        await browser.open(f"{server.url}?preview=1&fade=0.1&size=40")  # no reply at all: only the preview
        await browser.wait_for("document.querySelector('.caption .text')?.textContent.length > 0")
        await asyncio.sleep(1.5)  # far past fade=0.1: a preview stays for its screenshot
        name = await browser.evaluate("document.querySelector('.caption .name').textContent")
        text = await browser.evaluate("document.querySelector('.caption .text').textContent")
        size = await browser.evaluate("getComputedStyle(document.querySelector('.caption')).fontSize")
        shot = await browser.screenshot()
    finally:
        await server.close()
    assert (name, size) == ("Pip", "40px")
    assert text.startswith("This is how my lines look on stream")
    assert text_pixels(shot.crop(caption_box(shot))) > 1500, "the sample caption is drawn"


async def test_a_fixed_line_said_in_a_private_conversation_never_reaches_the_overlay(
    manager: ConversationManager, overlay: OverlayServer
) -> None:
    def line(text: str, private: bool) -> ChatEvent:
        return ChatEvent("discord", "dm-1" if private else "general", "ava", "Ava", text, private=private)

    async with aiohttp.ClientSession() as session, session.ws_connect(f"{overlay.base}/overlay/feed") as socket:
        await socket.receive_json()  # hello
        await manager.say(await manager.hear(line("!lurk", private=True)), "PRIVATE lurk line")
        await manager.say(await manager.hear(line("!lurk", private=False)), "PUBLIC lurk line")
        notice = await asyncio.wait_for(socket.receive_json(), 5)
    assert notice["text"] == "PUBLIC lurk line", "cues arrive in order: the private one was never published"
