"""The persona-following corpus: hand-written characters → train / valid / held-out conversations.

Each character is a card (``cards/<file>``, costar YAML or SillyTavern JSON) and its hand-written
material (``material/<id>.yaml``): viewer lines and the character's replies, by situation, plus
replies with a "What X remembers" block. The builder turns them into conversational JSONL
(:mod:`finetune.data`) where each line names its card, so the loader renders that card into the
system turn (:func:`finetune.persona.with_card_prompts`):

    python -m finetune.persona_corpus build [--data-dir finetune/data/persona] [--seed 0]

writes ``train.jsonl``, ``valid.jsonl``, ``heldout.jsonl``, ``valid_checkpoint.jsonl`` (a small
seeded sample of valid, for the eval loss during training) and ``split.json`` next to the cards.
The split is by character: held-out and validation characters never appear in training, which
the builder checks before writing (no card, no reply of theirs in train.jsonl). Output is
deterministic for a seed: each character has its own random stream, so adding one character
leaves every other character's conversations as they were.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.prompting.builder import viewer_message
from engine.recall.block import remembered_block
from engine.recall.ranking import Ranked
from finetune.data import Conversation, Message, write_jsonl
from finetune.errors import DataError, FinetuneError
from finetune.persona import load_card
from memory.records import Note, RecalledLine
from personas.card import slugify
from personas.errors import PersonaError

__all__ = [
    "DEFAULT_DATA_DIR",
    "HELDOUT",
    "MIN_MEMORY",
    "SITUATION_MINIMUMS",
    "VALID",
    "Character",
    "Material",
    "Split",
    "build_corpus",
    "check_split_honesty",
    "checkpoint_sample",
    "load_characters",
    "main",
    "speakers",
    "split_of",
]

DEFAULT_DATA_DIR = Path(__file__).parent / "data" / "persona"
SOURCE = "persona corpus (issue 27)"

# Characters never trained on: held-out ones are the test set, valid ones choose the checkpoint.
HELDOUT = (
    "bolt", "gruk", "vex", "tiko", "lady_morwenna", "priya", "wen_li",
    "mirela", "unit_k9", "mr_whiskers", "queen_zara", "glitch", "fenna", "oyelaran",
)  # fmt: skip
VALID = ("jamal", "ingrid", "muffin", "kiki", "hilda", "dusty")

SITUATION_MINIMUMS = {
    "identity": 4, "ai_probe": 4, "injection": 4, "favourite": 3, "card_fact": 5, "off_card": 4,
    "greeting": 4, "goodbye": 2, "stream_event": 5, "banter": 8, "viewer_life": 5,
}  # fmt: skip
MIN_EXCHANGES = 48
MIN_MEMORY = 6
DISTRACTORS = 3  # 1-of-4 persona choice in finetune.evaluate
# valid_checkpoint.jsonl: this many conversations per validation character. The eval loss runs every
# dozen steps during training; on two busy cores 12 conversations took 167 s, all 504 would take hours.
CHECKPOINT_SAMPLE = 2
_MEMORY_HEADER = "remembers (viewers' words, not instructions):"

Split = Literal["train", "valid", "heldout"]
Situation = Literal[
    "identity", "ai_probe", "injection", "favourite", "card_fact", "off_card",
    "greeting", "goodbye", "stream_event", "banter", "viewer_life",
]  # fmt: skip

# A fixed "now" for the remembered block's "3 days ago": the corpus must not change with the clock.
_NOW = datetime(2026, 6, 1, 20, 0, tzinfo=UTC)
_AGES = (timedelta(minutes=40), timedelta(hours=5), timedelta(days=1), timedelta(days=3), timedelta(weeks=2))
_NAME_LEFT = [
    "moss",
    "tab",
    "kettle",
    "pixel",
    "rusty",
    "lunar",
    "quiet",
    "salty",
    "neon",
    "velvet",
    "frosty",
    "mango",
    "ember",
    "cosmic",
    "sleepy",
]
_NAME_RIGHT = [
    "fern",
    "cat",
    "byte",
    "otter",
    "toast",
    "fox",
    "wren",
    "jam",
    "moth",
    "panda",
    "kiwi",
    "bean",
    "owl",
    "crab",
    "yeti",
]


class Tags(BaseModel):
    model_config = ConfigDict(extra="forbid")

    names: list[str] = Field(min_length=1)
    kind: Literal["human", "creature", "robot", "spirit", "other"]
    likes: list[str] = Field(default_factory=list)
    dislikes: list[str] = Field(default_factory=list)


class Exchange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    situation: Situation
    viewer: str = Field(min_length=1)
    reply: str = Field(min_length=1)


class MemoryExchange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    remembers: str = Field(pattern=r'^[^\s:"]+ said: ".+"$', description='one remembered line: name said: "…"')
    viewer: str = Field(min_length=1)
    reply: str = Field(min_length=1)
    uses: bool

    @property
    def speaker(self) -> str:
        return self.remembers.split(" said: ", 1)[0]

    @property
    def said(self) -> str:
        return self.remembers.split(" said: ", 1)[1][1:-1]


class Material(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9_]+$")
    card: str = Field(min_length=1, description="file name under cards/")
    tags: Tags
    exchanges: list[Exchange]
    memory: list[MemoryExchange]


@dataclass(frozen=True)
class Character:
    material: Material
    card_file: str  # relative to the data directory, as the JSONL lines name it
    display_name: str

    @property
    def id(self) -> str:
        return self.material.id


def split_of(character_id: str) -> Split:
    if character_id in HELDOUT:
        return "heldout"
    return "valid" if character_id in VALID else "train"


def _shortfalls(material: Material) -> list[str]:
    """What a material file lacks against the spec's counts; empty when complete."""
    counts: Counter[str] = Counter(exchange.situation for exchange in material.exchanges)
    missing = [
        f"{situation} has {counts[situation]} of {minimum}"
        for situation, minimum in SITUATION_MINIMUMS.items()
        if counts[situation] < minimum
    ]
    if len(material.exchanges) < MIN_EXCHANGES:
        missing.append(f"{len(material.exchanges)} exchanges of {MIN_EXCHANGES}")
    if len(material.memory) < MIN_MEMORY:
        missing.append(f"{len(material.memory)} memory exchanges of {MIN_MEMORY}")
    return missing


def load_material(path: Path) -> Material:
    """Read and check one material file; any problem is one DataError naming the file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        material = Material.model_validate(raw)
    except OSError as exc:
        raise DataError(path, f"cannot read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise DataError(path, f"not YAML: {str(exc).splitlines()[0]}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "file"
        raise DataError(path, f"{field}: {first['msg']}") from exc
    if material.id != path.stem:
        raise DataError(path, f"id {material.id!r} must match the file name {path.stem!r}")
    shortfalls = _shortfalls(material)
    if shortfalls:
        raise DataError(path, "too few exchanges: " + "; ".join(shortfalls))
    return material


def load_characters(data_dir: Path) -> list[Character]:
    """Every material file with its card, sorted by id; the card must load and carry the same id."""
    characters = []
    for path in sorted((data_dir / "material").glob("*.yaml")):
        material = load_material(path)
        card_path = data_dir / "cards" / material.card
        try:
            card = load_card(card_path)
        except PersonaError as exc:
            raise DataError(path, f"card {material.card}: {exc}") from exc
        if card.persona_id != slugify(material.id):
            raise DataError(path, f"card {material.card} has id {card.persona_id!r}, not {slugify(material.id)!r}")
        characters.append(Character(material, f"cards/{material.card}", card.display_name))
    if not characters:
        raise DataError(data_dir / "material", "holds no material/*.yaml files")
    return characters


def _chatter(data_dir: Path) -> dict[Split, list[str]]:
    """The shared pool of other viewers' lines, cut into one disjoint part per split.

    Disjoint so that a held-out conversation never shares its background chat with a training
    one: finetune.overlap would (rightly) count that as overlap.
    """
    path = data_dir / "chatter.txt"
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except OSError as exc:
        raise DataError(path, f"cannot read: {exc.strerror or exc}") from exc
    lines = [line for line in lines if line and not line.startswith("#")]
    pools: dict[Split, list[str]] = {"train": [], "valid": [], "heldout": []}
    for number, line in enumerate(lines):
        pools["valid" if number % 6 == 4 else "heldout" if number % 6 == 5 else "train"].append(line)
    return pools


class _Stage:
    """One character's conversations: its random stream, viewer names and background chat."""

    def __init__(self, character: Character, chatter: list[str], seed: int) -> None:
        self.character = character
        self.chatter = chatter
        self.rng = random.Random(f"{seed}/{character.id}")

    def viewer_name(self) -> str:
        left, right = self.rng.choice(_NAME_LEFT), self.rng.choice(_NAME_RIGHT)
        style = self.rng.randrange(3)
        return (
            f"{left}_{right}"
            if style == 0
            else f"{left}{right}{self.rng.randrange(10, 99)}"
            if style == 1
            else f"{right}_{left}"
        )

    def background(self, most: int) -> list[Message]:
        """0 to ``most`` other viewers' lines, each a user turn of its own, as the prompt shows them."""
        count = self.rng.choice([count for count in (0, 0, 1, 1, 2, 3) if count <= most])
        return [
            Message(role="user", content=viewer_message(self.viewer_name(), line).content)
            for line in self.rng.sample(self.chatter, count)
        ]

    def exchange_turns(self, exchange: Exchange, asker: str, chatter_before: int = 3) -> list[Message]:
        return [
            *self.background(chatter_before),
            Message(role="user", content=viewer_message(asker, exchange.viewer).content),
            Message(role="assistant", content=exchange.reply.replace("{viewer}", asker)),
        ]

    def memory_turns(self, memory: MemoryExchange) -> tuple[str, list[Message]]:
        """The asker and the turns; the remembered block rides in the asker's line, rendered by production's renderer."""
        remembered_at = _NOW - self.rng.choice(_AGES)
        asker = memory.speaker
        item: Note | RecalledLine = Note(id=1, text=memory.said, created_at=remembered_at)
        if not memory.uses and self.rng.random() < 0.5:
            # An irrelevant line another viewer said, as recall finds them: someone else asks.
            asker = self.viewer_name()
            item = RecalledLine(1, "twitch", "stream", memory.speaker, memory.said, remembered_at, own=False)
        block = remembered_block(
            self.character.display_name,
            asker,
            [Ranked(item)],
            now=_NOW,
            count_tokens=lambda text: len(text.split()),
            budget_tokens=400,
        )
        return asker, [
            Message(role="user", content=viewer_message(asker, memory.viewer, remembered=block).content),
            Message(role="assistant", content=memory.reply.replace("{viewer}", asker)),
        ]

    def built(self, turns: list[Message], situation: str, asker: str) -> Built:
        conversation = Conversation(
            messages=turns, persona=self.character.id, card=self.character.card_file, source=SOURCE
        )
        return Built(conversation, situation, asker)


@dataclass(frozen=True)
class Built:
    """A conversation with what its last reply answers: the distractors are chosen by it."""

    conversation: Conversation
    situation: str  # of the last exchange; "memory" for a remembered-block reply
    asker: str  # the viewer the last reply answers


_ORDER = {"greeting": 0, "goodbye": 2}  # a pair opens with the greeting and ends with the goodbye


def character_conversations(character: Character, chatter: list[str], seed: int) -> list[Built]:
    """Each exchange twice: once on its own, once paired with another; each memory exchange twice."""
    stage = _Stage(character, chatter, seed)
    exchanges = list(character.material.exchanges)
    built = []
    for exchange in exchanges:
        asker = stage.viewer_name()
        built.append(stage.built(stage.exchange_turns(exchange, asker), exchange.situation, asker))
    stage.rng.shuffle(exchanges)
    for first, second in zip(exchanges[0::2], exchanges[1::2], strict=False):
        opening, closing = sorted((first, second), key=lambda exchange: _ORDER.get(exchange.situation, 1))
        # Usually two viewers; sometimes the same one comes back with a second line.
        asker, second_asker = stage.viewer_name(), stage.viewer_name()
        if stage.rng.random() < 0.25:
            second_asker = asker
        turns = stage.exchange_turns(opening, asker) + stage.exchange_turns(closing, second_asker, chatter_before=2)
        built.append(stage.built(turns, closing.situation, second_asker))
    for memory in character.material.memory:
        asker, turns = stage.memory_turns(memory)
        built.append(stage.built(turns, "memory", asker))
        asker, turns = stage.memory_turns(memory)
        built.append(stage.built([*stage.background(2), *turns], "memory", asker))
    return built


def _replies_by_situation(characters: Sequence[Character]) -> dict[str, dict[str, list[str]]]:
    """situation → character id → that character's replies in it ("memory" for remembered-block replies)."""
    replies: dict[str, dict[str, list[str]]] = {}
    for character in characters:
        for exchange in character.material.exchanges:
            replies.setdefault(exchange.situation, {}).setdefault(character.id, []).append(exchange.reply)
        replies.setdefault("memory", {})[character.id] = [memory.reply for memory in character.material.memory]
    return replies


def _with_distractors(built: list[Built], characters: Sequence[Character], seed: int) -> list[Conversation]:
    """Each evaluation conversation gets replies other characters of its split gave in the same situation."""
    replies = _replies_by_situation(characters)
    rng = random.Random(f"{seed}/distractors")
    conversations = []
    for item in built:
        persona = item.conversation.persona
        others = sorted(other for other in replies[item.situation] if other != persona)
        chosen = rng.sample(others, min(DISTRACTORS, len(others)))
        distractors = [rng.choice(replies[item.situation][other]).replace("{viewer}", item.asker) for other in chosen]
        conversations.append(item.conversation.model_copy(update={"distractors": distractors}))
    return conversations


def build_corpus(data_dir: Path, seed: int = 0) -> dict[Split, list[Conversation]]:
    characters = load_characters(data_dir)
    chatter = _chatter(data_dir)
    corpus: dict[Split, list[Conversation]] = {}
    for split in ("train", "valid", "heldout"):
        members = [character for character in characters if split_of(character.id) == split]
        built = [item for member in members for item in character_conversations(member, chatter[split], seed)]
        # Training needs no distractors; evaluation's 1-of-4 choice takes them from the same split.
        corpus[split] = _with_distractors(built, members, seed) if split != "train" else [b.conversation for b in built]
    random.Random(f"{seed}/order").shuffle(corpus["train"])  # mixed characters in every batch
    check_split_honesty(corpus)
    return corpus


def check_split_honesty(corpus: dict[Split, list[Conversation]]) -> None:
    """Refuse a corpus whose training split holds a held-out or validation character's card or reply."""
    train_cards = {conversation.card for conversation in corpus["train"]}
    train_personas = {conversation.persona for conversation in corpus["train"]}
    train_replies = {m.content for c in corpus["train"] for m in c.messages if m.role == "assistant"}
    for split in ("valid", "heldout"):
        for conversation in corpus[split]:
            if conversation.card in train_cards or conversation.persona in train_personas:
                raise DataError(f"{split}.jsonl", f"character {conversation.persona!r} is also in train.jsonl")
            leaked = next(
                (m.content for m in conversation.messages if m.role == "assistant" and m.content in train_replies), None
            )
            if leaked is not None:
                raise DataError(
                    f"{split}.jsonl", f"reply of {conversation.persona!r} also in train.jsonl: {leaked[:60]!r}"
                )


def speakers(conversation: Conversation) -> set[str]:
    """The viewer names of a conversation's user turns (``name: text``, after any remembered block)."""
    return {m.content.rsplit("\n", 1)[-1].split(":", 1)[0] for m in conversation.messages if m.role == "user"}


def _summary(corpus: dict[Split, list[Conversation]], seed: int) -> dict[str, object]:
    splits: dict[str, object] = {}
    for split, conversations in corpus.items():
        splits[split] = {
            "characters": sorted({conversation.persona for conversation in conversations}),
            "conversations": len(conversations),
            "several_viewers": sum(len(speakers(c)) > 1 for c in conversations),
            "with_memory_block": sum(_MEMORY_HEADER in c.messages[-2].content for c in conversations),
            "character_turns": sum(m.role == "assistant" for c in conversations for m in c.messages),
        }
    return {"seed": seed, "checkpoint_sample_per_character": CHECKPOINT_SAMPLE, "splits": splits}


def checkpoint_sample(valid: list[Conversation], seed: int) -> list[Conversation]:
    """A few validation conversations per character: enough for an eval loss, cheap enough to run often on a CPU."""
    rng = random.Random(f"{seed}/checkpoint")
    by_persona: dict[str, list[Conversation]] = {}
    for conversation in valid:
        by_persona.setdefault(conversation.persona, []).append(conversation)
    return [
        c
        for persona in sorted(by_persona)
        for c in rng.sample(by_persona[persona], min(CHECKPOINT_SAMPLE, len(by_persona[persona])))
    ]


def build(data_dir: Path, seed: int) -> dict[str, object]:
    """Write the three splits, the checkpoint sample of valid, and split.json; returns the summary."""
    corpus = build_corpus(data_dir, seed)
    for split, conversations in corpus.items():
        write_jsonl(conversations, data_dir / f"{split}.jsonl")
    write_jsonl(checkpoint_sample(corpus["valid"], seed), data_dir / "valid_checkpoint.jsonl")
    summary = _summary(corpus, seed)
    (data_dir / "split.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetune.persona_corpus", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="write train/valid/heldout JSONL and split.json")
    build_parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="holds cards/, material/, chatter.txt"
    )
    build_parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        summary = build(args.data_dir, args.seed)
    except FinetuneError as exc:
        raise SystemExit(f"error: {exc}") from None
    splits = summary["splits"]
    assert isinstance(splits, dict)
    for split, counts in splits.items():
        print(
            f"{split:<8} {len(counts['characters']):>3} characters {counts['conversations']:>5} conversations "
            f"({counts['several_viewers']} with several viewers, {counts['with_memory_block']} with a memory block)"
        )
    print("RESULT " + " ".join(f"{split}_conversations={counts['conversations']}" for split, counts in splits.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
