"""What the character remembers is found however it was spelled, ranked best first, kept within
the budget without losing the best, and a correction is current over what it corrected."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from bot.app import build_manager, close_manager
from engine.backends.scripted import ScriptedBackend
from engine.events import ChatEvent
from engine.manager import ConversationManager
from engine.prompting.tokens import TokenCounter
from engine.recall.block import remembered_block
from engine.recall.disclosures import find_disclosures
from engine.recall.embedding import normalised
from engine.recall.ranking import Ranked, Ranking, superseded_notes
from engine.recall.terms import about_the_speaker, query_terms
from engine.settings import Settings
from memory import Note, NoteVector, RecalledLine, SqliteMemoryStore, VectorSpace
from memory.spelling import fold_word, spellings
from tests.fake_embedder import WordHashEmbedder

_numbers = itertools.count()
NOW = datetime(2026, 11, 29, tzinfo=UTC)


def line(author: str, text: str, *, addressed: bool = False, sent_at: datetime | None = None) -> ChatEvent:
    return ChatEvent(
        platform="twitch",
        channel_id="stream",
        author_id=f"id-{author}",
        author_name=author,
        text=text,
        message_id=f"k{next(_numbers)}",
        addresses_bot=addressed,
        sent_at=sent_at or datetime.now(UTC),
    )


async def recalled(store: SqliteMemoryStore, author: str, question: str) -> list[str]:
    terms = query_terms(question, ignore=["pip"])
    found = await store.recall(
        "twitch", "stream", f"id-{author}", terms, before_id=10**9, limit=3, about_speaker=about_the_speaker(question)
    )
    return [hit.text for hit in found]


async def remembered_for(manager: ConversationManager, backend: ScriptedBackend, author: str, question: str) -> str:
    assert await manager.handle(line(author, question, addressed=True)) is not None
    return backend.requests[-1].messages[-1].content


# -- spelling and form --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("said", "asked"),
    [
        ("my favorite color is teal", "pip what's my favourite colour?"),
        ("my favourite colour is teal", "pip what's my favorite color?"),
        ("the neighbours play the trombone at night", "what do my neighbors play?"),
        ("I have three kids and a minivan", "pip, was it 3?"),
        ("we adopted 2 ferrets last spring", "pip, two or five?"),
        ("Rex chewed the sofa again", "how is Rex's sofa?"),
    ],
)
async def test_recall_finds_a_line_whatever_spelling_or_form_either_side_used(
    tmp_path: Path, said: str, asked: str
) -> None:
    async with await SqliteMemoryStore.open(tmp_path / "m.sqlite3") as store:
        await store.record_message(line("ann", said))
        for number in range(30):  # chatter, so no word of the question is rare by accident
            await store.record_message(line(f"lurker{number}", f"what a stream today number {number}"))
        assert await recalled(store, "ann", asked) == [said]


async def test_memory_folds_the_terms_it_is_given_whoever_made_them(tmp_path: Path) -> None:
    async with await SqliteMemoryStore.open(tmp_path / "m.sqlite3") as store:
        await store.record_message(line("ann", "my favorite color is teal"))
        [found] = await store.recall("twitch", "stream", "id-ann", ["Favourite", "Colours"], before_id=10**9, limit=3)
    assert found.text == "my favorite color is teal"


def test_one_folded_word_for_each_spelling_and_every_spelling_for_a_folded_word() -> None:
    assert [fold_word(word) for word in ("Favourite", "colours", "dog's", "Three", "third", "Mum")] == [
        "favorite", "colors", "dog", "3", "3rd", "mom",
    ]  # fmt: skip
    assert spellings("favorite") == ("favorite", "favourite")
    assert spellings("3") == ("3", "three")
    assert [fold_word(word) for word in ("flour", "hour", "your", "mumble")] == ["flour", "hour", "your", "mumble"]


# -- the budget ---------------------------------------------------------------------------------


def test_the_budget_shortens_the_best_item_instead_of_dropping_it_for_a_weaker_one() -> None:
    best = RecalledLine(1, "twitch", "c", "ann", "I repair vintage organs " + "and pianos " * 20, NOW, own=True)
    weaker = RecalledLine(2, "twitch", "c", "ann", "nice", NOW, own=True)
    ranked = [Ranked(best), Ranked(weaker)]
    block = remembered_block("Pip", "ann", ranked, now=NOW, count_tokens=len, budget_tokens=120)
    assert block is not None
    assert "I repair vintage organs" in block and block.endswith('…"]')
    assert '"nice"' not in block, "the weaker item never takes the place of the stronger one"
    assert len(block) <= 120


def test_a_budget_too_small_for_any_of_the_best_item_shows_nothing_weaker() -> None:
    best = RecalledLine(1, "twitch", "c", "ann", "I repair vintage organs and pianos", NOW, own=True)
    weaker = RecalledLine(2, "twitch", "c", "ann", "ok", NOW, own=True)
    block = remembered_block("Pip", "ann", [Ranked(best), Ranked(weaker)], now=NOW, count_tokens=len, budget_tokens=90)
    assert block is None


# -- corrections --------------------------------------------------------------------------------


def test_a_move_is_a_disclosure_on_the_same_topic_as_where_one_lives() -> None:
    [lived] = find_disclosures("I live in York, lovely walls")
    [moved] = find_disclosures("actually I moved to Leeds last month")
    assert (lived.topic, moved.topic) == ("home", "home")
    [game] = find_disclosures("my favourite game is Celeste")
    [food] = find_disclosures("my favorite food is ramen")
    assert (game.topic, food.topic) == ("favourite game", "favourite food")
    assert [found.topic for found in find_disclosures("I love cats")] == [None]


def test_only_the_newest_note_on_a_topic_is_current() -> None:
    york = Note(1, "I live in York", NOW - timedelta(days=5), "disclosure", 10, topic="home")
    leeds = Note(2, "I moved to Leeds", NOW - timedelta(days=1), "disclosure", 20, topic="home")
    cats = Note(3, "I love cats", NOW - timedelta(days=9), "disclosure", 30)
    dogs = Note(4, "I love dogs", NOW - timedelta(days=8), "disclosure", 40)
    assert superseded_notes([york, leeds, cats, dogs]) == {1: 2}


async def test_a_newer_disclosure_wins_over_the_one_it_corrects(
    make_settings: Callable[..., Settings], counter: TokenCounter
) -> None:
    backend = ScriptedBackend(default="noted!")
    manager = await build_manager(make_settings(), backend=backend, counter=counter)
    five_days_ago, two_days_ago = datetime.now(UTC) - timedelta(days=5), datetime.now(UTC) - timedelta(days=2)
    try:
        await manager.hear(line("wren", "I live in York, it's lovely", sent_at=five_days_ago))
        await manager.hear(line("wren", "actually I moved to Leeds last month", sent_at=two_days_ago))
        for number in range(300):
            await manager.hear(line(f"lurker{number % 20}", f"filler chatter number {number}"))
        remembered = await remembered_for(manager, backend, "wren", "pip, where do I live?")
    finally:
        await close_manager(manager)
    block = remembered.split("]\n", 1)[0]  # the block, then the question
    items = [item for item in block.splitlines() if item.startswith("- ")]
    assert items[:2] == [
        '- wren told you 2 days ago: "I moved to Leeds last month"',
        '- wren told you 5 days ago (since changed): "I live in York, it\'s lovely"',
    ], "the correction first, what it corrected right after it, marked"


# -- questions about the asker ------------------------------------------------------------------


@pytest.mark.parametrize(
    "question",
    ["pip, do you remember the parade?", "what did I tell you about the parade?", "what's my parade story?"],
)
def test_questions_about_the_asker_are_recognised(question: str) -> None:
    assert about_the_speaker(question)


def test_a_question_about_something_else_is_not_about_the_asker() -> None:
    assert not about_the_speaker("pip, is the parade on tv tonight?")


async def test_do_you_remember_searches_the_askers_own_lines_by_any_shared_word(tmp_path: Path) -> None:
    async with await SqliteMemoryStore.open(tmp_path / "m.sqlite3") as store:
        await store.record_message(line("ann", "the parade went right past our flat"))
        for number in range(8):  # "parade" is common: alone it would not count as a memory
            await store.record_message(line(f"fan{number}", f"the parade float number {number} is great"))
        found = await recalled(store, "ann", "pip, do you remember the parade?")
    assert found[0] == "the parade went right past our flat"


def test_for_a_question_about_the_asker_their_notes_come_before_other_viewers_lines() -> None:
    note = Note(1, "I grow chillies on my balcony", NOW - timedelta(days=3), "disclosure", 10)
    others = RecalledLine(11, "twitch", "c", "bob", "the garden show had chillies", NOW, own=False)
    ranking = Ranking(about_speaker=True)
    ranking.add([others])
    ranking.add([note], weight=0.5)
    assert [entry.item for entry in ranking.ranked()] == [note, others]
    ranking.about_speaker = False
    assert [entry.item for entry in ranking.ranked()] == [others, note]


def test_a_note_and_the_line_it_came_from_are_one_item_shown_as_the_note() -> None:
    note = Note(1, "my cat is called Miso", NOW, "disclosure", source_message_id=10)
    same_line = RecalledLine(10, "twitch", "c", "ann", "my cat is called Miso lol", NOW, own=True)
    ranking = Ranking()
    ranking.add([same_line])
    ranking.add([note])
    assert [entry.item for entry in ranking.ranked()] == [note]


# -- full text and meaning, fused ---------------------------------------------------------------


class ConceptEmbedder(WordHashEmbedder):
    """Word-hash vectors, plus one strong shared direction for words that mean the same here."""

    def __init__(self, *same_meaning: str) -> None:
        super().__init__()
        self.same_meaning = frozenset(same_meaning)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        rows = super().embed(texts)
        for index, text in enumerate(texts):
            if self.same_meaning & set(query_terms(text)):
                rows[index] += 4 * np.eye(1, self.dimensions, dtype=np.float32)[0]
        return normalised(rows)


async def test_a_line_sharing_no_word_with_the_question_is_recalled_by_meaning(
    make_settings: Callable[..., Settings], counter: TokenCounter
) -> None:
    backend = ScriptedBackend(default="noted!")
    embedder = ConceptEmbedder("trade", "pipes")
    manager = await build_manager(make_settings(), backend=backend, counter=counter, embedder=embedder)
    try:
        await manager.hear(line("gus", "I spent ten years fixing pipes and nobody says thanks"))
        for number in range(300):
            await manager.hear(line("gus" if number % 10 == 0 else f"lurker{number % 20}", f"my chatter {number}"))
        assert manager.embeddings is not None
        await manager.embeddings.drain()
        remembered = await remembered_for(manager, backend, "gus", "pip, what's my trade?")
    finally:
        await close_manager(manager)
    assert 'gus said: "I spent ten years fixing pipes and nobody says thanks"' in remembered


def test_a_line_found_by_full_text_and_by_meaning_ranks_above_one_found_first_by_either_alone() -> None:
    by_words = RecalledLine(1, "twitch", "c", "ann", "I fix boilers", NOW, own=True)
    by_both = RecalledLine(2, "twitch", "c", "ann", "boilers are my whole job", NOW - timedelta(days=1), own=True)
    by_meaning = RecalledLine(3, "twitch", "c", "ann", "plumbing since school", NOW, own=True)
    ranking = Ranking(about_speaker=True)
    ranking.add([by_words, by_both])  # full text
    ranking.add([by_meaning, by_both])  # meaning
    assert ranking.ranked()[0].item == by_both


async def test_without_an_embedder_recall_is_full_text_alone(
    make_settings: Callable[..., Settings], counter: TokenCounter
) -> None:
    backend = ScriptedBackend(default="noted!")
    manager = await build_manager(make_settings(), backend=backend, counter=counter)
    try:
        assert manager.embeddings is None
        await manager.hear(line("gus", "I spent ten years fixing pipes and nobody says thanks"))
        for number in range(300):
            await manager.hear(line(f"lurker{number % 20}", f"my chatter {number}"))
        remembered = await remembered_for(manager, backend, "gus", "pip, what's my trade?")
    finally:
        await close_manager(manager)
    assert "fixing pipes" not in remembered


# -- notes by meaning ---------------------------------------------------------------------------


async def test_a_line_meaning_a_self_disclosure_becomes_a_note_with_its_words_source_and_time(
    make_settings: Callable[..., Settings], counter: TokenCounter
) -> None:
    settings = make_settings(moderation={"banned_words": "grimspoiler"})
    manager = await build_manager(settings, backend=ScriptedBackend(), counter=counter, embedder=WordHashEmbedder())
    said_at = datetime.now(UTC) - timedelta(days=2)
    told = line("skye", "flying scares me to death honestly", sent_at=said_at)
    try:
        await manager.hear(told)
        await manager.hear(line("skye", "lol that was hilarious for me"))  # chatter, by meaning too
        await manager.hear(line("troll", "flying scares me to death grimspoiler"))  # breaks a content rule
        assert manager.embeddings is not None
        await manager.embeddings.drain()
        [note] = await manager.memory.notes_for("twitch", "id-skye")
        troll_notes = await manager.memory.notes_for("twitch", "id-troll")
        source = await manager.memory.message_id_for("twitch", told.message_id)
    finally:
        await close_manager(manager)
    assert find_disclosures(told.text) == [], "no pattern knows this line: the note is by meaning"
    assert (note.text, note.kind, note.source_message_id) == (
        "flying scares me to death honestly",
        "disclosure",
        source,
    )
    assert note.created_at == said_at
    assert troll_notes == []


async def test_the_askers_note_is_not_crowded_out_by_their_lines_that_merely_share_a_word(
    make_settings: Callable[..., Settings], counter: TokenCounter
) -> None:
    backend = ScriptedBackend(default="noted!")
    manager = await build_manager(make_settings(memory={"recall_tokens": 60}), backend=backend, counter=counter)
    try:
        await manager.hear(line("pat", "my husband Tomasz makes the best dumplings"))
        for text in ("half the chat is asleep", "half time already", "half price pizza tonight"):
            await manager.hear(line("pat", text))
        for number in range(300):
            await manager.hear(line(f"lurker{number % 20}", f"filler chatter number {number}"))
        remembered = await remembered_for(manager, backend, "pat", "pip, who's my other half?")
    finally:
        await close_manager(manager)
    assert 'pat told you just now: "my husband Tomasz makes the best dumplings"' in remembered


async def test_a_note_found_by_meaning_keeps_its_topic(tmp_path: Path) -> None:
    embedder = WordHashEmbedder()
    async with await SqliteMemoryStore.open(tmp_path / "m.sqlite3") as store:
        await store.record_message(line("wren", "I live in York"))
        await store.add_note("twitch", "id-wren", "I live in York", kind="disclosure", topic="home")
        await store.use_vector_space(VectorSpace(embedder.name, embedder.dimensions))
        [note] = await store.notes_for("twitch", "id-wren")
        await store.add_note_vectors([NoteVector(note.id, embedder.embed([note.text])[0])])
        [(found, _)] = await store.nearest_notes("twitch", "id-wren", embedder.embed(["York"])[0], limit=1)
    assert found.topic == "home"


def test_a_correction_takes_the_place_of_the_note_it_corrected_which_follows_it_marked() -> None:
    york = Note(1, "I live in York", NOW - timedelta(days=5), "disclosure", 10, topic="home")
    leeds = Note(2, "I moved to Leeds", NOW - timedelta(days=1), "disclosure", 20, topic="home")
    cats = Note(3, "I love cats", NOW - timedelta(days=9), "disclosure", 30)
    ranking = Ranking(about_speaker=True)
    ranking.add([york, cats, leeds])  # the question shared a word with the older note only
    ranked = ranking.ranked(superseded_notes([york, leeds, cats]))
    assert [(entry.item, entry.superseded) for entry in ranked] == [(leeds, False), (york, True), (cats, False)]


async def test_a_dm_line_is_never_recalled_or_noted_by_meaning_in_a_public_channel(
    make_settings: Callable[..., Settings], counter: TokenCounter
) -> None:
    backend = ScriptedBackend(default="noted!")
    embedder = ConceptEmbedder("trade", "pipes")
    manager = await build_manager(make_settings(), backend=backend, counter=counter, embedder=embedder)
    try:
        secret = replace(line("gus", "I spent ten years fixing pipes, flying scares me to death"), private=True)
        await manager.hear(replace(secret, channel_id="dm-gus"))
        for number in range(300):
            await manager.hear(line("gus" if number % 10 == 0 else f"lurker{number % 20}", f"my chatter {number}"))
        assert manager.embeddings is not None
        await manager.embeddings.drain()
        remembered = await remembered_for(manager, backend, "gus", "pip, what's my trade?")
    finally:
        await close_manager(manager)
    assert "fixing pipes" not in remembered


async def chatter(manager: ConversationManager, regular: str, lines: int) -> None:
    for number in range(lines):
        await manager.hear(line(regular if number % 10 == 0 else "lurker", f"the map on level {number} is huge"))


def test_a_later_line_on_the_same_matter_goes_just_before_the_line_it_updates() -> None:
    plan = RecalledLine(1, "twitch", "c", "ann", "going to Rome in May", NOW - timedelta(days=9), own=True)
    other = RecalledLine(2, "twitch", "c", "ann", "holiday countdown is on", NOW - timedelta(days=5), own=True)
    change = RecalledLine(3, "twitch", "c", "ann", "change of plans, it's Vienna now", NOW, own=True)
    ranking = Ranking(about_speaker=True)
    ranking.add([plan, other])  # found for the question; the change shares too little with it
    ranking.add_newer(plan, change)
    assert [entry.item for entry in ranking.ranked()] == [change, plan, other]


async def test_a_viewers_change_of_plan_is_recalled_before_the_plan_it_changed(
    make_settings: Callable[..., Settings], counter: TokenCounter, minilm
) -> None:
    backend = ScriptedBackend(default="noted!")
    manager = await build_manager(make_settings(), backend=backend, counter=counter, embedder=minilm)
    try:
        await manager.hear(line("pax", "booked a week in Rome for the summer holiday", sent_at=NOW - timedelta(days=3)))
        await chatter(manager, "pax", 100)
        await manager.hear(line("pax", "Rome fell through, so it's Lisbon instead!", sent_at=NOW - timedelta(days=1)))
        await chatter(manager, "pax", 300)  # both out of the history window
        assert manager.embeddings is not None
        await manager.embeddings.drain()
        remembered = await remembered_for(manager, backend, "pax", "pip, where am I going on holiday?")
    finally:
        await close_manager(manager)
    assert "Lisbon" in remembered and "Rome for the summer" in remembered
    assert remembered.index("Lisbon") < remembered.index("Rome for the summer")


# -- a regular's hundreds of lines (issue 26, gap 2,000) -----------------------------------------


async def test_chat_close_to_a_found_line_is_not_taken_for_its_update_unless_it_says_something_changed(
    make_settings: Callable[..., Settings], counter: TokenCounter, minilm
) -> None:
    backend = ScriptedBackend(default="noted!")
    manager = await build_manager(make_settings(), backend=backend, counter=counter, embedder=minilm)
    try:
        await manager.hear(line("gus", "omg my wife!!!", sent_at=NOW - timedelta(days=3)))
        await manager.hear(line("gus", "my missus is called Priya", sent_at=NOW - timedelta(days=3)))
        await chatter(manager, "gus", 100)
        # 0.32 from "omg my wife!!!" by meaning, later, and no word of a change: not an update.
        await manager.hear(
            line("gus", "I got some real cheap eggs today! 2$ 12 dozen!", sent_at=NOW - timedelta(days=1))
        )
        await chatter(manager, "gus", 300)
        assert manager.embeddings is not None
        await manager.embeddings.drain()
        remembered = await remembered_for(manager, backend, "gus", "pip, who's my wife?")
    finally:
        await close_manager(manager)
    assert "Priya" in remembered
    assert "cheap eggs" not in remembered or remembered.index("Priya") < remembered.index("cheap eggs")


async def test_with_recall_by_meaning_a_note_sharing_no_word_with_the_question_is_not_shown_as_an_answer(
    make_settings: Callable[..., Settings], counter: TokenCounter, minilm
) -> None:
    backend = ScriptedBackend(default="noted!")
    manager = await build_manager(make_settings(), backend=backend, counter=counter, embedder=minilm)
    try:
        await manager.hear(line("gaz", "my cat is called Miso", sent_at=NOW - timedelta(days=3)))
        await manager.hear(
            line("gaz", "Wolves through and through, Molineux is my church", sent_at=NOW - timedelta(days=3))
        )
        await chatter(manager, "gaz", 300)
        assert manager.embeddings is not None
        await manager.embeddings.drain()
        club = await remembered_for(manager, backend, "gaz", "pip, which club do I support?")
        anything = await remembered_for(manager, backend, "gaz", "pip, do you remember me?")
    finally:
        await close_manager(manager)
    assert "Wolves" in club
    assert "Miso" not in club, "the cat is no answer to the club; it would take the answer's room"
    assert "Miso" in anything, "a question with no words to match still gets every note"
