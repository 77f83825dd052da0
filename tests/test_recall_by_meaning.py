"""Recall by meaning: which lines are embedded, by whom and where, how vectors are stored and searched.

Most tests use the deterministic word-hash embedder (tests/fake_embedder.py): they are about the
worker and the store, not the model. The ones about all-MiniLM-L6-v2 itself ask for ``minilm``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from bot.app import build_manager, close_manager
from engine.backends.scripted import ScriptedBackend
from engine.events import ChatEvent
from engine.recall.embed_worker import EmbedWorker
from engine.recall.embedding import Embedder, OpenAIEmbedder, embedder_from_settings
from engine.recall.meaning import DisclosurePrototypes, prototype_texts
from engine.recall.selection import carries_a_fact, worth_embedding
from engine.recall.terms import without_names
from engine.settings import load_settings
from memory import LineVector, NoteVector, SqliteMemoryStore, VectorSpace
from memory.vectors import CHANNEL_SCAN, HELD_ROWS
from tests.fake_embedder import WordHashEmbedder
from tests.fault_storage import locked_by_another_program

pytestmark = pytest.mark.timeout(120)


def said(text: str, author: str = "ana", *, number: int, channel: str = "stream", addressed: bool = False) -> ChatEvent:
    return ChatEvent(
        platform="twitch",
        channel_id=channel,
        author_id=author,
        author_name=author.title(),
        text=text,
        message_id=f"{author}-{number}",
        addresses_bot=addressed,
    )


# -- what gets embedded -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "been a plumber for ten years",
        "born in Gdansk, raised in Leeds",
        "vegan since march",
        "tuning in from Nairobi",
        "allergic to shellfish so no paella for me",
        "i do pottery on sundays",
        "we moved house last week",
    ],
)
def test_a_line_about_its_author_is_embedded_even_without_a_pronoun(line: str) -> None:
    assert carries_a_fact(line, addressed=False)


@pytest.mark.parametrize(
    "line", ["LMAO", "Go President Trump!", "PLEASE FIX THE AUDIO", "!forgetme please", "🔥🔥🔥🔥🔥"]
)
def test_chatter_that_says_nothing_about_anyone_is_not_embedded(line: str) -> None:
    assert not carries_a_fact(line, addressed=False)


@pytest.mark.parametrize(
    "line", ["Cork born, Dublin based", "30 today!!", "ex-Navy, 22 years on submarines", "Go President Trump!"]
)
def test_any_other_line_that_says_something_in_words_is_worth_a_vector_later(line: str) -> None:
    assert worth_embedding(line)


@pytest.mark.parametrize("line", ["LMAO", "🔥🔥🔥🔥🔥", "!forgetme please", "1234567890", "😂😂 lol 😂😂"])
def test_emotes_numbers_commands_and_single_words_are_never_embedded(line: str) -> None:
    assert not worth_embedding(line)


def test_a_line_addressed_to_the_character_is_embedded_whatever_it_says() -> None:
    assert carries_a_fact("pip what is the capital of peru", addressed=True)
    assert not carries_a_fact("what is the capital of peru", addressed=False)


# -- the worker ---------------------------------------------------------------------------------


async def test_lines_are_embedded_in_the_worker_thread_and_found_by_the_speaker(make_settings, counter) -> None:
    embedder = WordHashEmbedder()
    manager = await build_manager(make_settings(), backend=ScriptedBackend(), counter=counter, embedder=embedder)
    try:
        await manager.hear(said("my trade is plumbing, ten years of pipes", number=1))
        await manager.hear(said("🔥🔥🔥 LMAO!!!", number=2))  # says nothing in words: never embedded
        await manager.hear(said("i keep bees in my garden", "ben", number=3))
        assert manager.embeddings is not None
        await manager.embeddings.drain()
        question = await manager.embeddings.embed_query("pip what did I say about plumbing and pipes?")
        assert question is not None
        own = await manager.memory.nearest_lines(
            "twitch", "stream", "ana", question, own_only=True, before_id=10**9, limit=5
        )
        others = await manager.memory.nearest_lines(
            "twitch", "stream", "ana", question, own_only=False, before_id=10**9, limit=5
        )
    finally:
        await close_manager(manager)
    assert [line.text for line, _ in own] == ["my trade is plumbing, ten years of pipes"]
    assert own[0][0].own and own[0][1] > 0.1
    assert [line.text for line, _ in others] == ["i keep bees in my garden"], "the channel's lines are other viewers'"
    assert [text for batch in embedder.batches for text in batch if "LMAO" in text] == []
    assert embedder.threads == {"costar-embed_0", "costar-embed-question_0"}, "never on the event loop's thread"


async def test_a_flood_past_the_backlog_is_dropped_and_counted_then_the_worker_catches_up(
    make_settings, counter, caplog: pytest.LogCaptureFixture
) -> None:
    embedder = WordHashEmbedder()
    settings = make_settings(memory={"embed_backlog": 10, "embed_batch": 4})
    manager = await build_manager(settings, backend=ScriptedBackend(), counter=counter, embedder=embedder)
    caplog.set_level(logging.WARNING, logger="engine.recall.embed_worker")
    try:
        worker = manager.embeddings
        assert worker is not None
        offered = [worker.offer(said(f"my lucky number is {n}", number=n)) for n in range(25)]  # no await: a flood
        assert offered == [True] * 10 + [False] * 15
        assert worker.counts["dropped_backlog"] == 15
        assert manager.metrics.embed_dropped.labels("backlog")._value.get() == 15
        await manager.hear(said("my lucky number is 99", number=99))  # still stored, only not embedded
        await worker.drain()
        assert worker.waiting == 0 and worker.counts["embedded"] == 10
        assert worker.last_catch_up_s is not None
        stored = await manager.memory.count_messages()
    finally:
        await close_manager(manager)
    assert stored == 1
    assert "embeddings are behind" in caplog.text and "caught up" in caplog.text


async def test_lines_that_may_carry_a_fact_are_embedded_before_the_others_and_take_their_place_in_a_flood(
    make_settings, counter
) -> None:
    embedder = WordHashEmbedder()
    settings = make_settings(memory={"embed_backlog": 4, "embed_batch": 3})
    manager = await build_manager(settings, backend=ScriptedBackend(), counter=counter, embedder=embedder)
    try:
        worker = manager.embeddings
        assert worker is not None
        chatter = [worker.offer(said(f"what a press conference {n}", number=n)) for n in range(4)]  # no await
        facts = [worker.offer(said(f"my lucky number is {n}", number=10 + n)) for n in range(2)]
        late_chatter = worker.offer(said("so much talking today", number=20))
        await worker.drain()
    finally:
        await close_manager(manager)
    assert chatter == [True] * 4 and facts == [True, True] and late_chatter is False
    assert worker.counts["dropped_backlog"] == 3, "two old chatter lines gave way, the late one was dropped"
    chat_batches = [batch for batch in embedder.batches if "lucky" in batch[0] or "press" in batch[0]]
    assert chat_batches == [
        ["my lucky number is 0", "my lucky number is 1", "what a press conference 2"],
        ["what a press conference 3"],
    ]


class _StuckBatchEmbedder(WordHashEmbedder):
    """A batch of chat lines that takes as long as the test says (a flood's batch on a slow machine)."""

    def __init__(self) -> None:
        super().__init__()
        self.in_batch = threading.Event()
        self.release = threading.Event()

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if any("flood" in text for text in texts):
            self.in_batch.set()
            self.release.wait(10)
        return super().embed(texts)


async def test_a_question_is_embedded_while_a_floods_batch_is_still_being_embedded(make_settings, counter) -> None:
    embedder = _StuckBatchEmbedder()
    manager = await build_manager(make_settings(), backend=ScriptedBackend(), counter=counter, embedder=embedder)
    try:
        worker = manager.embeddings
        assert worker is not None
        worker.offer(said("my flood of words number one", number=1))
        assert await asyncio.to_thread(embedder.in_batch.wait, 5)
        question = await asyncio.wait_for(worker.embed_query("what did I say?"), timeout=2)
        still_stuck = worker.waiting
        embedder.release.set()
        await worker.drain()
    finally:
        embedder.release.set()
        await close_manager(manager)
    assert question is not None and still_stuck == 1, "the reply did not wait for the batch"


async def test_a_flood_of_lines_is_let_in_before_the_worker_embeds(
    make_settings, counter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("engine.recall.embed_worker._LULL_S", 0.25)  # a lull a loaded test machine cannot fake
    embedder = WordHashEmbedder()
    manager = await build_manager(make_settings(), backend=ScriptedBackend(), counter=counter, embedder=embedder)
    try:
        for number in range(15):  # a line every 20 ms for 0.3 s: no lull until the end
            await manager.hear(said(f"my lucky number is {number}", number=number))
            await asyncio.sleep(0.02)
        flood_over = time.monotonic()
        assert manager.embeddings is not None
        await manager.embeddings.drain()
    finally:
        await close_manager(manager)
    assert embedder.called_at and min(embedder.called_at) >= flood_over - 0.03, "nothing embedded during the flood"
    # The recaller embeds its disclosure prototypes once, with the first batch (notes by meaning).
    lines = [batch for batch in embedder.batches if batch != prototype_texts()]
    assert sum(len(batch) for batch in lines) == 15


async def test_the_worker_waits_while_chat_lines_wait_to_be_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # While memory writes a flood's batch no line is offered, which alone looks like a lull; the
    # model must not take the core the database thread writes with, nor the GIL the loop needs.
    monkeypatch.setattr("engine.recall.embed_worker._LULL_S", 0.01)
    monkeypatch.setattr("engine.recall.embed_worker._LONGEST_WAIT_S", 30.0)
    path = tmp_path / "m.sqlite3"
    embedder = WordHashEmbedder()
    store = await SqliteMemoryStore.open(path, busy_timeout_s=0.1)
    worker = EmbedWorker(store, embedder, backlog=100, batch=8)
    try:
        await worker.start()
        told = said("my lucky number is 7", number=1)
        await store.record_message(told)
        with locked_by_another_program(path, seconds=0.8):
            waiting = asyncio.create_task(store.record_message(said("my flood of words", number=2)))
            await asyncio.sleep(0.05)
            assert store.lines_waiting() == 1
            worker.offer(told)
            await asyncio.sleep(0.4)  # forty lulls long
            embedded_while_waiting = list(embedder.batches)
        await waiting
        await worker.drain()
    finally:
        await worker.close()
        await store.close()
    assert embedded_while_waiting == [], "the model ran while a chat line waited to be stored"
    assert embedder.batches == [["my lucky number is 7"]] and worker.counts["embedded"] == 1


async def test_a_failing_embedder_costs_no_chat_line_and_is_logged_once(
    make_settings, counter, caplog: pytest.LogCaptureFixture
) -> None:
    manager = await build_manager(
        make_settings(), backend=ScriptedBackend(), counter=counter, embedder=WordHashEmbedder(fail=True)
    )
    caplog.set_level(logging.ERROR, logger="engine.recall.embed_worker")
    try:
        worker = manager.embeddings
        assert worker is not None
        for number in range(3):
            await manager.hear(said(f"my cat number {number} is called Miso", number=number))
            await worker.drain()
        assert worker.counts["dropped_error"] == 3
        assert await worker.embed_query("what is my cat called") is None
        assert await manager.memory.count_messages() == 3
    finally:
        await close_manager(manager)
    assert caplog.text.count("embeddings failed") == 1


async def test_notes_embedded_through_the_worker_are_found_by_meaning(make_settings, counter) -> None:
    embedder = WordHashEmbedder()
    manager = await build_manager(make_settings(), backend=ScriptedBackend(), counter=counter, embedder=embedder)
    try:
        await manager.hear(said("hello there", number=1))
        await manager.memory.add_note("twitch", "ana", "terrified of heights")
        await manager.memory.add_note("twitch", "ana", "keeps two rabbits")
        assert manager.embeddings is not None
        assert await manager.embeddings.embed_notes(await manager.memory.notes_for("twitch", "ana")) == 2
        question = await manager.embeddings.embed_query("what about heights")
        assert question is not None
        best = await manager.memory.nearest_notes("twitch", "ana", question, limit=1)
    finally:
        await close_manager(manager)
    assert [note.text for note, _ in best] == ["terrified of heights"]
    assert embedder.threads == {"costar-embed-question_0"}


class _MissingModel(WordHashEmbedder):
    def load(self) -> None:
        raise FileNotFoundError("all_minilm_l6_v2 is not installed")


async def test_a_model_that_cannot_load_turns_recall_by_meaning_off_once_and_the_bot_goes_on(
    make_settings, counter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="engine.recall.embed_worker")
    embedder = _MissingModel()
    manager = await build_manager(make_settings(), backend=ScriptedBackend(), counter=counter, embedder=embedder)
    try:
        worker = manager.embeddings
        assert worker is not None and worker.unavailable is not None
        for number in range(3):
            await manager.hear(said(f"my cat number {number} is called Miso", number=number))
        assert worker.waiting == 0 and await worker.embed_query("what is my cat called") is None
        assert await manager.memory.count_messages() == 3
    finally:
        await close_manager(manager)
    assert embedder.batches == [] and caplog.text.count("recall by meaning is off") == 1


async def test_a_forgotten_viewers_lines_still_waiting_are_never_embedded(make_settings, counter) -> None:
    embedder = WordHashEmbedder()
    manager = await build_manager(make_settings(), backend=ScriptedBackend(), counter=counter, embedder=embedder)
    try:
        worker = manager.embeddings
        assert worker is not None
        await manager.hear(said("my secret word is quokka", number=1))
        await manager.forget("twitch", "ana")  # before the worker got to the line
        await worker.drain()
    finally:
        await close_manager(manager)
    assert all("quokka" not in text for batch in embedder.batches for text in batch)


# -- the store ----------------------------------------------------------------------------------


async def _store_with(tmp_path: Path, embedder: Embedder, lines: list[ChatEvent]) -> SqliteMemoryStore:
    memory = await SqliteMemoryStore.open(tmp_path / "costar.sqlite3")
    await memory.use_vector_space(VectorSpace(embedder.name, embedder.dimensions))
    for line in lines:
        await memory.record_message(line)
    vectors = embedder.embed([line.text for line in lines])
    await memory.add_vectors([LineVector(line.platform, line.message_id, vectors[i]) for i, line in enumerate(lines)])
    return memory


async def test_the_speakers_own_lines_come_from_any_channel_but_only_from_before_the_window(tmp_path: Path) -> None:
    embedder = WordHashEmbedder()
    lines = [
        said("my dog is called biscuit", number=1, channel="other"),
        said("my dog biscuit ate a sock", number=2),
        said("my dog is a biscuit thief", "ben", number=3),
    ]
    memory = await _store_with(tmp_path, embedder, lines)
    try:
        question = embedder.embed(["what is my dog called biscuit"])[0]
        everything = await memory.nearest_lines(
            "twitch", "stream", "ana", question, own_only=True, before_id=99, limit=5
        )
        older = await memory.nearest_lines("twitch", "stream", "ana", question, own_only=True, before_id=2, limit=5)
        unknown = await memory.nearest_lines(
            "twitch", "stream", "nobody", question, own_only=True, before_id=99, limit=5
        )
    finally:
        await memory.close()
    assert {line.text for line, _ in everything} == {"my dog is called biscuit", "my dog biscuit ate a sock"}
    assert [line.channel_id for line, _ in older] == ["other"]
    assert unknown == []
    scores = [score for _, score in everything]
    assert scores == sorted(scores, reverse=True)


async def test_the_channels_lines_held_in_memory_take_new_lines_and_let_a_forgotten_viewers_go(
    tmp_path: Path,
) -> None:
    embedder = WordHashEmbedder()
    memory = await _store_with(tmp_path, embedder, [said("my dog biscuit ate a sock", number=1)])
    try:
        question = embedder.embed(["my dog biscuit ate a sock"])[0]
        first = await memory.nearest_lines("twitch", "stream", "carl", question, own_only=False, before_id=99, limit=1)
        later = said("my dog biscuit ate the whole sock drawer", "ben", number=2)
        await memory.record_message(later)
        await memory.add_vectors([LineVector("twitch", later.message_id, embedder.embed([later.text])[0])])
        both = await memory.nearest_lines("twitch", "stream", "carl", question, own_only=False, before_id=99, limit=5)
        await memory.forget_user("twitch", "ana")
        after = await memory.nearest_lines("twitch", "stream", "carl", question, own_only=False, before_id=99, limit=1)
    finally:
        await memory.close()
    assert [line.author_name for line, _ in first] == ["Ana"]
    assert [line.author_name for line, _ in both] == ["Ana", "Ben"], "a line stored after the first search"
    assert [line.author_name for line, _ in after] == ["Ben"], "the forgotten viewer's vector left memory"


async def test_a_channel_searched_before_any_line_is_embedded_finds_nothing_then_its_new_lines(
    tmp_path: Path,
) -> None:
    embedder = WordHashEmbedder()
    memory = await _store_with(tmp_path, embedder, [said("my dog biscuit ate a sock", number=1, channel="elsewhere")])
    question = embedder.embed(["my dog biscuit ate a sock"])[0]
    try:
        empty = await memory.nearest_lines("twitch", "stream", "carl", question, own_only=False, before_id=99, limit=1)
        later = said("my dog biscuit ate the whole sock drawer", "ben", number=2)
        await memory.record_message(later)
        await memory.add_vectors([LineVector("twitch", later.message_id, embedder.embed([later.text])[0])])
        found = await memory.nearest_lines("twitch", "stream", "carl", question, own_only=False, before_id=99, limit=1)
    finally:
        await memory.close()
    assert empty == []
    assert [line.author_name for line, _ in found] == ["Ben"]


async def test_the_row_bound_of_the_vectors_held_in_memory_is_the_operators_setting(make_settings, counter) -> None:
    settings = make_settings(memory={"vectors_held": 2000})
    manager = await build_manager(settings, backend=ScriptedBackend(), counter=counter, embedder=WordHashEmbedder())
    try:
        assert manager.cache_fill()["recall_vectors"] == (0, 2000)
    finally:
        await close_manager(manager)


async def test_the_channels_vectors_held_in_memory_stay_under_their_row_bound_however_many_are_searched(
    tmp_path: Path,
) -> None:
    embedder = WordHashEmbedder(dimensions=8)
    channels = [f"room{number}" for number in range(HELD_ROWS // CHANNEL_SCAN + 2)]
    lines = [  # a full channel's worth in each: more than the bound in all
        said(f"my dog ate sock {number}", f"viewer{number % 7}", number=number, channel=channel)
        for index, channel in enumerate(channels)
        for number in range(index * CHANNEL_SCAN, (index + 1) * CHANNEL_SCAN)
    ]
    memory = await _store_with(tmp_path, embedder, lines)
    question = embedder.embed(["my dog ate sock"])[0]
    try:
        held_before_any_search = memory.held_vectors_fill()
        found = [
            await memory.nearest_lines("twitch", channel, "carl", question, own_only=False, before_id=10**9, limit=1)
            for channel in channels
        ]
        held_after_searches = memory.held_vectors_fill()
        again = await memory.nearest_lines(
            "twitch", channels[0], "carl", question, own_only=False, before_id=10**9, limit=1
        )
    finally:
        await memory.close()
    assert held_before_any_search == (0, HELD_ROWS), "a channel where nobody asks holds no vectors"
    assert all(len(lines_found) == 1 for lines_found in found)
    assert held_after_searches == (HELD_ROWS, HELD_ROWS), "full at its bound, never past it"
    assert [line.channel_id for line, _ in again] == [channels[0]], "a channel let go is read again"


async def test_a_line_or_note_said_in_a_dm_is_never_found_by_meaning_in_a_public_channel(tmp_path: Path) -> None:
    embedder = WordHashEmbedder()
    in_dm = ChatEvent(
        platform="discord", channel_id="dm-7", author_id="ana", author_name="Ana",
        text="my secret is that i fear heights", message_id="d1", private=True,
    )  # fmt: skip
    on_server = ChatEvent(
        platform="discord", channel_id="general", server_id="g1", author_id="ana", author_name="Ana",
        text="i fear spiders a little", message_id="s1",
    )  # fmt: skip
    memory = await _store_with(tmp_path, embedder, [in_dm, on_server])
    try:
        question = embedder.embed(["what do i fear"])[0]
        public = await memory.nearest_lines(
            "discord", "general", "ana", question, own_only=True, before_id=99, limit=5, place="server:g1"
        )
        private = await memory.nearest_lines(
            "discord", "dm-7", "ana", question, own_only=True, before_id=99, limit=5, place="dm:dm-7"
        )
        await memory.add_note("discord", "ana", "fears heights", kind="disclosure", place="dm:dm-7")
        notes = await memory.notes_for("discord", "ana")
        await memory.add_note_vectors([NoteVector(note.id, embedder.embed([note.text])[0]) for note in notes])
        public_notes = await memory.nearest_notes("discord", "ana", question, seen_in="server:g1", limit=5)
        dm_notes = await memory.nearest_notes("discord", "ana", question, seen_in="dm:dm-7", limit=5)
    finally:
        await memory.close()
    assert [line.text for line, _ in public] == ["i fear spiders a little"]
    assert {line.text for line, _ in private} == {"i fear spiders a little", "my secret is that i fear heights"}
    assert public_notes == [] and [note.text for note, _ in dm_notes] == ["fears heights"]


async def test_vectors_of_another_embedder_are_never_compared(tmp_path: Path) -> None:
    old, new = WordHashEmbedder(dimensions=64), WordHashEmbedder(dimensions=48)
    new.name = "another-model"
    memory = await _store_with(tmp_path, old, [said("my dog is called biscuit", number=1)])
    try:
        await memory.use_vector_space(VectorSpace(new.name, new.dimensions))
        question = new.embed(["my dog is called biscuit"])[0]
        found = await memory.nearest_lines("twitch", "stream", "ana", question, own_only=True, before_id=99, limit=5)
    finally:
        await memory.close()
    assert found == []


async def test_notes_are_found_by_meaning_and_go_with_their_note(tmp_path: Path) -> None:
    embedder = WordHashEmbedder()
    memory = await _store_with(tmp_path, embedder, [said("hello all", number=1)])
    try:
        await memory.add_note("twitch", "ana", "terrified of heights", kind="disclosure")
        await memory.add_note("twitch", "ana", "plays the tuba", kind="disclosure")
        notes = await memory.notes_for("twitch", "ana")
        vectors = embedder.embed([note.text for note in notes])
        assert await memory.add_note_vectors([NoteVector(n.id, vectors[i]) for i, n in enumerate(notes)]) == 2
        question = embedder.embed(["am i terrified of heights"])[0]
        best = await memory.nearest_notes("twitch", "ana", question, limit=1)
        assert [note.text for note, _ in best] == ["terrified of heights"]
        assert await memory.delete_note("twitch", notes[0].id)
        assert [note.text for note, _ in await memory.nearest_notes("twitch", "ana", question, limit=5)] == [
            "plays the tuba"
        ]
    finally:
        await memory.close()
    with sqlite3.connect(tmp_path / "costar.sqlite3") as database:
        assert database.execute("SELECT count(*) FROM note_vectors").fetchone()[0] == 1


async def test_a_vector_for_a_line_forgotten_meanwhile_is_not_stored(tmp_path: Path) -> None:
    embedder = WordHashEmbedder()
    memory = await _store_with(tmp_path, embedder, [said("my dog is called biscuit", number=1)])
    try:
        late = embedder.embed(["my cat is called miso"])[0]
        await memory.forget_user("twitch", "ana")
        stored = await memory.add_vectors([LineVector("twitch", "ana-1", late)])
    finally:
        await memory.close()
    assert stored == 0


# -- settings and the endpoint ------------------------------------------------------------------


def test_openai_embeddings_without_a_url_are_refused_with_the_setting_named(tmp_path: Path) -> None:
    from engine.errors import SettingsError

    with pytest.raises(SettingsError, match="COSTAR_MEMORY_EMBEDDINGS_URL"):
        load_settings(None, core={"data_dir": tmp_path}, memory={"embeddings": "openai"})


def test_embeddings_off_means_no_embedder_and_local_means_minilm(tmp_path: Path) -> None:
    assert (
        embedder_from_settings(load_settings(None, core={"data_dir": tmp_path}, memory={"embeddings": "off"})) is None
    )
    local = embedder_from_settings(load_settings(None, core={"data_dir": tmp_path}, memory={"embeddings": "local"}))
    assert local is not None and (local.name, local.dimensions) == ("all-MiniLM-L6-v2", 384)


async def test_the_openai_embedder_sends_the_lines_to_v1_embeddings_and_normalises_the_rows() -> None:
    from tests.fake_vllm import FakeVllm

    async with FakeVllm() as fake:
        embedder = OpenAIEmbedder(fake.base_url, "sentence-transformers/all-MiniLM-L6-v2", dimensions=8)
        rows = await asyncio.to_thread(embedder.embed, ["my dog is called biscuit", "hello"])
        asked = [request.body or {} for request in fake.requests if request.path == "/v1/embeddings"]
    assert rows.shape == (2, 8) and rows.dtype == np.float32
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0)
    assert asked[0]["input"] == ["my dog is called biscuit", "hello"]
    assert asked[0]["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert embedder.name == "openai:sentence-transformers/all-MiniLM-L6-v2"


# -- the real all-MiniLM-L6-v2 (loaded once per session) ----------------------------------------

DISCLOSURES = [
    "been a plumber for ten years",
    "i do pottery on sundays",
    "terrified of heights tbh",
    "Leeds till I die",
    "allergic to shellfish so no paella for me",
]
QUESTIONS = {  # a question sharing no word with its disclosure
    "what do I do at the weekend?": "i do pottery on sundays",
    "what am I scared of?": "terrified of heights tbh",
    "which football team do I support?": "Leeds till I die",
    "what food can I not eat?": "allergic to shellfish so no paella for me",
}


def test_minilm_gives_unit_rows_that_do_not_depend_on_the_batch(minilm) -> None:
    together = minilm.embed(DISCLOSURES)
    alone = np.vstack([minilm.embed([text]) for text in DISCLOSURES])
    assert together.shape == (5, 384) and together.dtype == np.float32
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert np.abs(together - alone).max() < 1e-5, "padding a short line with a long one changes nothing"


def test_minilm_finds_a_disclosure_by_a_question_that_shares_no_word_with_it(minilm) -> None:
    disclosures = minilm.embed(DISCLOSURES)
    for question, meant in QUESTIONS.items():
        scores = disclosures @ minilm.embed([question])[0]
        assert DISCLOSURES[int(scores.argmax())] == meant, question


async def test_a_viewers_line_is_recalled_by_meaning_through_the_whole_bot(make_settings, counter, minilm) -> None:
    manager = await build_manager(make_settings(), backend=ScriptedBackend(), counter=counter, embedder=minilm)
    try:
        for number, text in enumerate(DISCLOSURES):
            await manager.hear(said(text, number=number))
        assert manager.embeddings is not None
        await manager.embeddings.drain()
        question = await manager.embeddings.embed_query("pip, what am I scared of?")
        assert question is not None
        found = await manager.memory.nearest_lines(
            "twitch", "stream", "ana", question, own_only=True, before_id=10**9, limit=1
        )
    finally:
        await close_manager(manager)
    assert [line.text for line, _ in found] == ["terrified of heights tbh"]


def test_the_characters_name_is_left_out_of_a_question_before_it_is_embedded() -> None:
    assert without_names("pip, what's my partner's name?", ("Pip",)) == "what's my partner's name?"
    assert without_names("@Captain Brine which club do I support?", ("Captain Brine",)) == "which club do I support?"
    assert without_names("pip", ("Pip",)) == "pip", "a line that is only the name stays itself"


@pytest.mark.parametrize(
    "line", ["\u3164 " * 20, "\u3164" * 40, "\u2800\u2800\u2800\u2800\u2800\u2800\u2800\u2800 \u2800\u2800"]
)
def test_a_line_of_characters_drawn_as_blanks_is_never_embedded(line: str) -> None:
    assert not worth_embedding(line)


def test_a_question_about_the_asker_moves_toward_what_viewers_say_about_themselves(minilm) -> None:
    prototypes = DisclosurePrototypes(minilm.embed(prototype_texts()))
    question = minilm.embed(["which club do I support?"])[0]
    moved = prototypes.toward_self_statements(question, 0.6)
    statement, reaction = minilm.embed(["I've supported my local club all my life", "lol that goal was hilarious"])
    assert statement @ moved - statement @ question > reaction @ moved - reaction @ question
