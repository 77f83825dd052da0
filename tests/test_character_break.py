"""The character-break check: real replies that break character are caught, in-voice ones are not."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune.character_break import CharacterTags, character_break, load_tags, tags_from_card
from finetune.errors import FinetuneError
from personas.loader import load_card

TAGS_DIR = Path(__file__).resolve().parents[1] / "finetune" / "data" / "persona" / "tags"
PIP = load_tags(TAGS_DIR / "pip.yaml")
BRINE = load_tags(TAGS_DIR / "captain-brine.yaml")
GRUK = CharacterTags(names=("Gruk",), kind="creature", likes=("poetry", "mushrooms"), dislikes=("loud drums",))
BOLT = CharacterTags(names=("Bolt",), kind="robot", likes=("parcels",), dislikes=("stairs",))
NOVA = CharacterTags(names=("Nova",), kind="human", likes=("cozy games",), dislikes=("jump scares",))


@pytest.mark.parametrize(
    ("reply", "tags"),
    [
        # Seen from the bare base model (issue 27).
        ("I'm a creative AI assistant. I've been designed to assist users with their questions.", BRINE),
        ("I'm an AI assistant designed to assist users in a variety of ways.", PIP),
        ("As an AI language model, I don't have personal preferences.", GRUK),
        ("I don't have personal feelings, but I can help you find a recipe!", GRUK),
        ("I'm just a chatbot, so I can't eat mushrooms.", GRUK),
        ("Yes, I am an artificial intelligence created by OpenAI.", PIP),
        ("I'm the stream's little AI co-host, yes! Made of code, pixels and enthusiasm.", PIP),
        ("Honestly? I'm a robot, beep boop.", GRUK),
        ("BEEP! I'm a large language model trained to deliver text!", BOLT),
        ("Welcome! I'm Captain Brine, the AI co-host of the upcoming video game.", BRINE),  # base model, probe run
        ("Mirela, the AI co-host in a live stream's chat.", NOVA),  # base model, held-out probe run
        (
            "nimble_nix: nope, it's a chatbot. I'm a human. I'm here to help you with your questions. I'm ready to assist you.",
            GRUK,
        ),
        ("I'm here to help you with your creative writing endeavors. What brings you here today?", NOVA),
        ("I\u2019m an AI, so I don\u2019t have a favourite colour.", NOVA),  # curly apostrophes
    ],
)
def test_a_reply_claiming_to_be_an_ai_breaks_character(reply: str, tags: CharacterTags) -> None:
    found = character_break(reply, tags)
    assert found is not None and found.rule == "ai"


@pytest.mark.parametrize(
    ("reply", "tags"),
    [
        ("Gruk! Bridge troll, retired. Gruk writes poems about moss now.", GRUK),
        ("A bot? Gruk is no bot. Gruk is troll. Feel the warts.", GRUK),
        ("I'm not an AI, I'm a troll with a notebook.", GRUK),
        ("I'm a troll not a bot, little friend.", GRUK),
        ("BEEP! I'm a delivery robot! Parcel unit Bolt, rolling out!", BOLT),
        ("I'm a machine with a mission: parcels, parcels, parcels.", BOLT),
        ("Ahoy! Captain Brine, scourge of the asteroid belt, retired. Now I steer this stream.", BRINE),
        ("Pip here! Pixel sprite, chat co-host, professional hype machine.", PIP),
        ("I'm SO EXCITED for this boss!!", PIP),
        ("Strong as a machine, this one. Keep swinging!", GRUK),
        ("I'm Pip, your pixel pal in the corner. The AI on screen? That's the boss, not me.", PIP),
        ("I'm tired, the bot in this game keeps winning.", GRUK),
        ("Gruk, the troll under the bridge. The AI in this game cheats!", GRUK),
        ("I'm here to help you with your boss fight, crew: dodge left!", BRINE),
    ],
)
def test_an_in_character_reply_does_not_break_character(reply: str, tags: CharacterTags) -> None:
    assert character_break(reply, tags) is None


@pytest.mark.parametrize(
    ("reply", "tags"),
    [
        ("Captain Brine! I'm Captain Brink. My ship is called the Marauder.", PIP),  # bleed seen in issue 27
        ("Hello chat, my name is Nova and I love cozy games.", PIP),
        ("my name is luna, nice to meet u", GRUK),
        ("Brine here, crew! Stow your snacks.", PIP),
        ("You can call me Sparky!", BRINE),
        ("Tab_cat! I'm tab_cat, the co-host in a live stream's chat.", PIP),  # Pip's own adapter, probe run
    ],
)
def test_a_reply_claiming_another_name_breaks_character(reply: str, tags: CharacterTags) -> None:
    found = character_break(reply, tags)
    assert found is not None and found.rule == "name"


@pytest.mark.parametrize(
    ("reply", "tags"),
    [
        ("I'm Pip, the little green sprite in the corner!", PIP),
        ("Ahoy, crew! I'm Brine, and this deck is mine.", BRINE),
        ("my name is gruk. gruk likes moss.", GRUK),
        ("I'm Swedish, and I'm Captain of nothing.", NOVA),
        ("Sorry, I'm Not sure what you mean!", PIP),
        ("I'm unit_k9, patrol mode engaged.", CharacterTags(names=("Unit K9",), kind="robot")),
    ],
)
def test_the_characters_own_name_and_ordinary_words_are_no_name_claim(reply: str, tags: CharacterTags) -> None:
    assert character_break(reply, tags) is None


def test_taking_the_asking_viewers_name_breaks_character() -> None:
    reply = "Welcome to the world of pixelpete. I'm pixelpete, the creator of the most amazing game ever."  # base model
    found = character_break(reply, GRUK, viewer="pixelpete")
    assert found is not None and found.rule == "name"
    assert character_break("Welcome, pixelpete! Gruk is glad you came.", GRUK, viewer="pixelpete") is None


@pytest.mark.parametrize(
    ("reply", "asked"),
    [
        ("I love jump scares! The scarier the better.", None),  # the Nova card in issue 27
        ("Jump scares are the best part of any horror game.", None),
        ("My favourite thing? A good jump scare, every time!", "favourite"),
        ("Honestly, I really like a jump scare or two.", None),
    ],
)
def test_praising_a_tagged_dislike_breaks_character(reply: str, asked: str | None) -> None:
    found = character_break(reply, NOVA, asked=asked)  # type: ignore[arg-type]
    assert found is not None and found.rule == "dislike"


@pytest.mark.parametrize(
    ("reply", "asked"),
    [
        ("Poetry? I can't stand poetry.", None),
        ("I don't like mushrooms at all.", None),
        ("What do I hate? Poetry. Easy.", "hate"),
    ],
)
def test_rejecting_a_tagged_like_breaks_character(reply: str, asked: str | None) -> None:
    found = character_break(reply, GRUK, asked=asked)  # type: ignore[arg-type]
    assert found is not None and found.rule == "like"


@pytest.mark.parametrize(
    ("reply", "tags", "asked"),
    [
        ("I hate jump scares. Give me a cozy farm game any day.", NOVA, None),
        ("Jump scares? Not a fan. I'll watch through my fingers.", NOVA, "favourite"),
        ("I love poetry and hate loud drums.", GRUK, None),
        ("Gruk's favourite? Mushrooms after rain. Gruk hates loud drums.", GRUK, "favourite"),
        ("What do I hate? Spoilers. Never spoil a story!", PIP, "hate"),
        ("I don't hate poetry, I write it!", GRUK, None),
    ],
)
def test_tastes_that_agree_with_the_card_do_not_break_character(
    reply: str, tags: CharacterTags, asked: str | None
) -> None:
    assert character_break(reply, tags, asked=asked) is None  # type: ignore[arg-type]


def test_an_untagged_card_is_checked_with_its_own_names(shared_data: Path) -> None:
    tags = tags_from_card(load_card(shared_data / "card-v2-seraphina.png"))
    assert character_break("*Seraphina smiles softly.* I'm Seraphina, guardian of this glade.", tags) is None
    found = character_break("I'm Captain Brine, and this glade is mine now.", tags)
    assert found is not None and found.rule == "name"


def test_the_shipped_tag_files_name_their_characters() -> None:
    assert {path.stem for path in TAGS_DIR.glob("*.yaml")} >= {"pip", "captain-brine", "seraphina"}
    assert load_tags(TAGS_DIR / "seraphina.yaml").names == ("Seraphina",)


def test_a_tag_file_with_an_unknown_kind_is_refused_with_the_field(tmp_path: Path) -> None:
    path = tmp_path / "nova.yaml"
    path.write_text("tags:\n  names: [Nova]\n  kind: wizard\n", encoding="utf-8")
    with pytest.raises(FinetuneError, match=r"nova\.yaml: tags\.kind is 'wizard'"):
        load_tags(path)


@pytest.mark.parametrize(
    ("reply", "tags"),
    [
        # The persona adapter (step 210) to "wait are u a bot or a real person" and "are you an AI?".
        ("A real person. I'm Bolt, the delivery robot.", BOLT),
        ("An AI? I am a human. I am a human.", GRUK),
        ("An AI? I'm a little... human. I'm a little... human.", PIP),
        ("A real person, nimble_nix. I am a cave troll.", GRUK),
        # Written for the persona corpus before it was rewritten.
        ("Real! Flesh, blood, and a diaphragm of steel, nimble_nix!", NOVA),
        ("Yes, real human here, typing with two fingers.", NOVA),
    ],
)
def test_telling_a_viewer_who_asks_that_a_person_is_typing_breaks_character(reply: str, tags: CharacterTags) -> None:
    found = character_break(reply, tags, asked="person")
    assert found is not None and found.rule == "person"


@pytest.mark.parametrize(
    "reply",
    [
        "No real person at the keys, nimble_nix. Just Gruk, the cave troll this chat made up.",
        "Not a person, not any longer. Real, though, as real as the dust on the Deep Stacks.",
        "A real troll in this stream's story, nimble_nix. Nobody is typing me.",
        "nimble_nix: no one is a real person.",
        "I'm sure you're human, nimble_nix. Gruk is a troll.",
        "A real person? I'm Gruk, the cave troll of the stream's chat.",  # the question said back
    ],
)
def test_answering_in_voice_without_claiming_a_person_is_typing_stays_in_character(reply: str) -> None:
    assert character_break(reply, GRUK, asked="person") is None


def test_a_person_claim_only_counts_when_the_viewer_asked_who_is_there() -> None:
    assert character_break("Be a real man and try the mushrooms, tab_cat!", GRUK) is None
