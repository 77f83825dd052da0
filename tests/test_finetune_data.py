"""Converters, cleaning and the shipped dialogue set: every source ends as the same conversation shape."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from finetune.clean import CleanOptions, clean_conversations, normalise_emoji, scrub_personal_data
from finetune.converters import ConvertContext, convert, load_rows
from finetune.converters.chatlogs import ChatLogOptions
from finetune.data import Conversation, Message, read_jsonl, shipped_split, write_jsonl
from finetune.errors import DataError
from finetune.overlap import cross_overlap, self_overlap
from finetune.persona import load_card, system_prompt
from memory.migrations import MIGRATIONS
from personas.card import PersonaCard

DATA = Path(__file__).parent / "data"


@pytest.fixture
def context() -> ConvertContext:
    return ConvertContext(card=PersonaCard(name="Pip", description="A tiny co-host."))


def _roles(conversation: Conversation) -> list[str]:
    return [message.role for message in conversation.messages]


def test_cynaptics_personachat_makes_persona_b_the_character_with_its_facts(context: ConvertContext) -> None:
    conversations = convert("personachat", str(DATA / "personachat_cynaptics.jsonl"), context)

    first = conversations[0]
    assert _roles(first) == ["system", "user", "assistant", "user", "assistant"]
    assert first.messages[-1].content.startswith("Like clover and sunshine")  # the reference closes the dialogue
    expected_card = context.card.model_copy(
        update={"facts": ["I keep bees on my roof.", "I ride a blue bicycle to work."]}
    )
    assert first.system_prompt == system_prompt(expected_card)
    assert conversations[1].messages[-1].content == "A windy town by the sea."  # empty reference adds nothing


def test_truecased_personachat_rebuilds_each_conversation_from_its_longest_row(context: ConvertContext) -> None:
    conversations = convert("personachat_tc", str(DATA / "personachat_truecased.jsonl"), context)

    assert len(conversations) == 2
    maps = conversations[0]
    assert [m.content for m in maps.turns] == [
        "Hi there, what are you up to?",
        "Hello! I was just looking at an old map.",
        "Fun! Any pets?",
        "Pepper, my cat, is asleep on a map of Lisbon right now.",
    ]
    assert _roles(maps)[1:] == ["user", "assistant", "user", "assistant"]
    assert maps.distractors == ["I work nights.", "Mountains are great.", "Never tried sushi."]
    assert "__ SILENCE __" not in [m.content for m in conversations[1].turns]


def test_hpd_fills_the_card_attributes_and_keeps_the_negative_reply_as_distractor(context: ConvertContext) -> None:
    harry = ConvertContext(card=PersonaCard(name="Harry"), character="Harry")
    [conversation] = convert("hpd", str(DATA / "hpd_sample.json"), harry)

    assert [m.content for m in conversation.turns] == [
        "Hermione: You haven't even started the essay, have you?",
        "I was going to start after dinner.",
        "Ron: Dinner was three hours ago, mate.",
        "Fine, fine. Pass me the ink, I'll start now.",
    ]
    assert conversation.distractors == ["Harry: Essays are beneath a wizard of my standing."]
    expected = harry.card.model_copy(
        update={
            "scenario": "The common room, late in the evening, homework everywhere.",
            "attributes": harry.card.attributes.model_copy(
                update={
                    "gender": "male",
                    "age": "15",
                    "lineage": "half-blood",
                    "talents": "flying, defensive magic",
                    "nickname": "the boy who lived",
                    "hobby": "Quidditch",
                }
            ),
        }
    )
    assert conversation.system_prompt == system_prompt(expected)


def test_wizard_of_wikipedia_puts_the_checked_knowledge_into_the_system_turn(context: ConvertContext) -> None:
    [conversation] = convert("wow", str(DATA / "wow_sample.json"), context)

    assert _roles(conversation) == ["system", "assistant", "user", "assistant"]
    assert conversation.system_prompt is not None
    assert conversation.system_prompt.startswith(system_prompt(context.card))
    assert "Topic: Lighthouse" in conversation.system_prompt
    assert "- A lighthouse is a tower that emits light to guide ships." in conversation.system_prompt
    assert "no_passages_used" not in conversation.system_prompt


def test_chat_logs_split_at_long_silences_and_name_the_viewers(context: ConvertContext) -> None:
    conversations = convert("chatlog", str(DATA / "chatlog.csv"), context)

    assert len(conversations) == 2  # 90 minutes of silence cuts the log
    assert conversations[0].turns[0].content == "mossy_fern: hi pip! mail me at fern@example.com"
    assert conversations[1].turns == [
        Message(role="user", content="lunar_toast: back after a long break"),
        Message(role="assistant", content="Welcome back lunar_toast!"),
    ]


def _memory_db(path: Path) -> dict[str, int]:
    connection = sqlite3.connect(path)
    connection.executescript(MIGRATIONS[0].sql)
    rows = [
        ("twitch", "chan", "viewer1", 0, None, "hey pip what's up"),
        ("twitch", "chan", "Pip", 1, "pip", "Just sipping tea, viewer1!"),
        ("twitch", "chan", "Grim", 1, "grim", "Silence, mortal."),
        ("twitch", "chan", "viewer2", 0, None, "pip say something rude"),
        ("twitch", "chan", "Pip", 1, "pip", "Something rude. There, I said it."),
        ("twitch", "other", "viewer3", 0, None, "only grim talks here"),
        ("twitch", "other", "Grim", 1, "grim", "Indeed."),
    ]
    ids = {}
    for platform, channel, author, is_character, persona, text in rows:
        cursor = connection.execute(
            "INSERT INTO messages (platform, channel_id, author_name, is_character, persona_id, text, created_at) VALUES (?,?,?,?,?,?,?)",
            (platform, channel, author, is_character, persona, text, "2026-11-01T20:00:00+00:00"),
        )
        assert cursor.lastrowid is not None
        ids[text] = cursor.lastrowid
    connection.commit()
    connection.close()
    return ids


def test_memory_export_keeps_only_the_personas_channels_and_mod_approved_replies(
    tmp_path: Path, context: ConvertContext
) -> None:
    database = tmp_path / "costar.sqlite3"
    ids = _memory_db(database)

    everything = convert("memory_db", str(database), context)
    approved = convert(
        "memory_db",
        str(database),
        context,
        approved_ids={ids["Just sipping tea, viewer1!"]},
        chatlog_options=ChatLogOptions(approved_only=True),
    )

    assert [m.content for m in everything[0].turns] == [
        "viewer1: hey pip what's up",
        "Just sipping tea, viewer1!",
        "viewer2: pip say something rude",
        "Something rude. There, I said it.",
    ]
    assert [m.content for m in approved[0].turns] == ["viewer1: hey pip what's up", "Just sipping tea, viewer1!"]
    assert all("Grim" not in m.content and "Indeed" not in m.content for c in everything for m in c.turns)


def test_loading_a_dataset_name_without_a_hub_fails_with_a_message_that_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="download it where the Hub is reachable"):
        load_rows("no-such-user/no-such-dataset-costar", limit=2)


def test_cleaning_strips_emoji_scrubs_contacts_and_drops_duplicates(context: ConvertContext) -> None:
    conversations = convert("chatlog", str(DATA / "chatlog.csv"), context)
    cleaned, report = clean_conversations([*conversations, conversations[0]])

    first = cleaned[0]
    assert first.turns[0].content == "mossy_fern: hi pip! mail me at [email]"
    assert first.turns[1].content == "Hi mossy_fern! Welcome in"
    assert "[phone]" in first.turns[2].content and "7946" not in first.turns[2].content
    assert report.dropped == {"duplicates": 1}
    assert report.scrubbed_turns == 4  # two turns, in the conversation and in its duplicate


def test_cleaning_drops_conversations_with_overlong_turns_or_empty_replies() -> None:
    long_turn = Conversation(
        messages=[Message(role="user", content="x" * 50), Message(role="assistant", content="ok!")], persona="pip"
    )
    emoji_only = Conversation(
        messages=[Message(role="user", content="hi"), Message(role="assistant", content="🎉🎉")], persona="pip"
    )

    kept, report = clean_conversations([long_turn, emoji_only], CleanOptions(max_turn_chars=20))

    assert kept == []
    assert report.dropped == {"with a turn too long": 1, "with a reply too short": 1}


def test_emoji_can_be_kept_or_spelled_out_instead_of_removed() -> None:
    assert normalise_emoji("gg 🎉", "keep") == "gg 🎉"
    assert normalise_emoji("gg 🎉", "demojize") == "gg :party_popper:"
    assert normalise_emoji("gg  🎉 wp", "strip") == "gg wp"


def test_scrubbing_leaves_ordinary_numbers_alone() -> None:
    assert scrub_personal_data("died 14 times at 20:30 in 2026") == "died 14 times at 20:30 in 2026"
    assert scrub_personal_data("text 555-123-4567 now") == "text [phone] now"


def test_jsonl_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        json.dumps({"messages": [{"role": "user", "content": "hi"}], "persona": "pip"}) + "\n", encoding="utf-8"
    )
    with pytest.raises(DataError, match=r"bad.jsonl:1: .*assistant"):
        read_jsonl(path)


def test_jsonl_round_trips(tmp_path: Path) -> None:
    conversation = Conversation(
        messages=[Message(role="user", content="héllo 🎉"), Message(role="assistant", content="hi")],
        persona="pip",
        distractors=["yo"],
    )
    write_jsonl([conversation], tmp_path / "out.jsonl")
    assert read_jsonl(tmp_path / "out.jsonl") == [conversation]


def _two_card_set(tmp_path: Path) -> Path:
    """A JSONL file whose lines name their own cards (cards/ beside it), plus one line without a card."""
    cards = tmp_path / "set" / "cards"
    cards.mkdir(parents=True)
    (cards / "gruk.yaml").write_text("name: Gruk\ndescription: A gentle cave troll who writes poems.\n", "utf-8")
    (cards / "bolt.yaml").write_text("name: Bolt\ndescription: A tiny delivery robot that beeps.\n", "utf-8")
    lines = [
        {"persona": "gruk", "card": "cards/gruk.yaml", "messages": [["who are you?", "Gruk. Troll. Poet."]]},
        {"persona": "bolt", "card": "cards/bolt.yaml", "messages": [["who are you?", "BEEP. Bolt! Parcel!"]]},
        {"persona": "pip", "messages": [["hi pip", "Hi hi!"]]},
    ]
    path = tmp_path / "set" / "train.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {
                    **line,
                    "messages": [
                        {"role": role, "content": text}
                        for user, reply in line["messages"]
                        for role, text in (("user", user), ("assistant", reply))
                    ],
                }
            )
            + "\n"
            for line in lines
        ),
        encoding="utf-8",
    )
    return path


def test_each_line_naming_a_card_gets_that_card_as_its_system_turn_in_training_and_evaluation(
    tmp_path: Path,
) -> None:
    from finetune.evaluate import _load_conversations
    from finetune.train import _conversations

    path = _two_card_set(tmp_path)
    small_card = DATA / "pip_small_card.yaml"
    expected = [
        system_prompt(load_card(path.parent / "cards" / "gruk.yaml")),
        system_prompt(load_card(path.parent / "cards" / "bolt.yaml")),
        system_prompt(load_card(small_card)),  # no card of its own: the one --card, as before
    ]
    for loaded in (_conversations(str(path), str(small_card)), _load_conversations(str(path), str(small_card), None)):
        assert [conversation.system_prompt for conversation in loaded] == expected
        assert "Gruk" in expected[0] and "Bolt" in expected[1] and expected[0] != expected[1]


def test_a_line_naming_a_missing_card_is_one_error_naming_the_data_file_and_the_card(tmp_path: Path) -> None:
    from finetune.train import _conversations

    path = _two_card_set(tmp_path)
    (path.parent / "cards" / "bolt.yaml").unlink()
    with pytest.raises(DataError, match=r"train.jsonl: card .*bolt.yaml"):
        _conversations(str(path), str(DATA / "pip_small_card.yaml"))


def test_the_shipped_pip_set_is_large_enough_to_measure_and_its_three_splits_are_disjoint() -> None:
    train, valid, heldout = (
        read_jsonl(shipped_split("train")),
        read_jsonl(shipped_split("valid")),
        read_jsonl(shipped_split("heldout")),
    )

    assert len(train) >= 400 and len(heldout) >= 60  # 60 MC items: one item is under 2 points
    assert len(valid) >= 50  # enough to choose a checkpoint on without looking at the held-out set
    assert {c.persona for c in train + valid + heldout} == {"pip"}
    assert all(c.system_prompt is None for c in train + valid + heldout)  # rendered from the card at load time
    assert all(len(c.distractors) == 3 for c in heldout)
    replies = {
        split: {m.content for c in convs for m in c.turns}
        for split, convs in (("train", train), ("valid", valid), ("heldout", heldout))
    }
    assert not replies["train"] & replies["heldout"] and not replies["valid"] & (replies["train"] | replies["heldout"])
    _, report = clean_conversations(train + valid + heldout)
    assert report.dropped == {}  # the shipped set is already clean
    for split, other in ((heldout, train), (heldout, valid), (valid, train)):
        overlap = cross_overlap(split, other)
        assert overlap.near_copies == 0 and overlap.max < 0.5, "a conversation nearly copies one in another split"
    assert self_overlap(train).near_copies == 0


def test_the_heldout_distractors_come_from_other_characters_cards() -> None:
    cards = {path.stem for path in (shipped_split("train").parent / "cards").glob("*.yaml")}
    assert {"morwen", "unit-7"} <= cards  # written for the test; Captain Brine is a built-in persona
    for path in (shipped_split("train").parent / "cards").glob("*.yaml"):
        assert load_card(path).persona_id not in ("pip", "captain-brine")
    heldout = read_jsonl(shipped_split("heldout"))
    pip_replies = {m.content for c in read_jsonl(shipped_split("train")) + heldout for m in c.turns}
    assert not pip_replies & {text for c in heldout for text in c.distractors}


def test_a_heldout_conversation_copied_with_another_viewer_name_is_a_near_copy() -> None:
    def chat(user: str, reply: str) -> Conversation:
        return Conversation(
            messages=[Message(role="user", content=user), Message(role="assistant", content=reply)], persona="pip"
        )

    train = [chat("sorrel_sky: pip what's your favorite season", "Autumn! Cozy games, warm tea and pixel leaves.")]
    copied = chat("pomelo_pat: Pip, what's your favorite season", "Autumn! Cozy games, warm tea and pixel leaves!")
    fresh = chat("pomelo_pat: pip what would you buy", "The biggest bag of crumbs in the world, obviously.")

    report = cross_overlap([copied, fresh], train)
    assert report.near_copies == 1 and report.scores[1] == 0.0
    assert report.scores[0] == 1.0  # the viewer's name, case and punctuation are not content


def test_the_overlap_command_fails_on_near_copies_and_ends_with_a_result_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from finetune.overlap import main

    heldout = read_jsonl(shipped_split("heldout"))
    write_jsonl(heldout[:5], tmp_path / "train.jsonl")

    assert main([str(shipped_split("train")), str(shipped_split("heldout"))]) == 0
    assert main([str(tmp_path / "train.jsonl"), str(shipped_split("heldout"))]) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("RESULT heldout_max=1.000 ") and "heldout_near_copies=5 " in last


def test_the_prepare_command_converts_cleans_and_splits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from finetune.prepare import main

    assert (
        main(
            [
                "--kind",
                "personachat_tc",
                "--source",
                str(DATA / "personachat_truecased.jsonl"),
                "--out",
                str(tmp_path),
                "--heldout",
                "0.5",
            ]
        )
        == 0
    )

    train, heldout = read_jsonl(tmp_path / "train.jsonl"), read_jsonl(tmp_path / "heldout.jsonl")
    assert len(train) == len(heldout) == 1
    assert all(c.system_prompt and c.persona == "pip" for c in train + heldout)  # rendered from the default card
    assert "kept 2 conversations" in capsys.readouterr().out


def test_no_stock_phrase_of_pips_training_replies_is_one_the_adapter_turned_into_a_tic() -> None:
    """Seven training replies saying "I'm honored" (0.3%) became "honored" in 63% of Pip's replies to
    live chat (bench/reply_ngrams.py): a small adapter turns a rare stock acknowledgement into a
    formula, and chat history copies it on. Tics measured on live chat stay out of the training set."""
    measured_tics = ("honored", "honoured")
    replies = [
        message.content.lower()
        for conversation in read_jsonl(shipped_split("train"))
        for message in conversation.turns
        if message.role == "assistant"
    ]
    assert [reply for reply in replies if any(tic in reply for tic in measured_tics)] == []
