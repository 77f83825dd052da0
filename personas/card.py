"""The persona card: costar's own format, validated with pydantic.

A card is what the character *is* (description, personality, attributes, facts, example
dialogues), how it talks (``style``), what it knows on cue (``lorebook``) and which weights speak
for it (``model``). SillyTavern cards are imported into this shape; ``extensions`` keeps whatever
they carried that we do not understand, untouched.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from personas.moderation_rules import ModerationOverrides
from personas.on_stream import OverlayStyle, VoiceSection
from personas.stream import CustomCommand, Reactions, StreamTimer

__all__ = ["Attributes", "ExampleTurn", "LoreEntry", "Lorebook", "ModelBinding", "PersonaCard", "Style", "slugify"]

# vLLM only accepts these LoRA ranks for --max-lora-rank (see docs/serving.md).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def slugify(name: str) -> str:
    """A typeable id: lowercase letters (of any script) and digits, dashes between words.

    NFKC first, so full-width Latin letters become plain ones; letters outside Latin are kept, so a Japanese
    name keeps its own id instead of colliding with every other one on a placeholder.
    """
    normalised = unicodedata.normalize("NFKC", name).lower()
    slug = re.sub(r"[\W_]+", "-", normalised).strip("-")
    return slug or "persona"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Attributes(_Strict):
    """The 13 character attributes of the Harry Potter Dialogue dataset (HPD)."""

    gender: str | None = None
    age: str | None = None
    lineage: str | None = None
    talents: str | None = None
    looks: str | None = None
    achievement: str | None = None
    title: str | None = None
    belongings: str | None = None
    export: str | None = Field(None, description="HPD's 'export' attribute: what the character is expert in")
    hobby: str | None = None
    character: str | None = None
    spells: str | None = None
    nickname: str | None = None

    def filled(self) -> dict[str, str]:
        return {key: value for key, value in self.model_dump().items() if value}


class ExampleTurn(_Strict):
    """One line of an example dialogue: ``user`` speaks to the character, ``char`` answers."""

    user: str | None = None
    char: str | None = None

    @model_validator(mode="after")
    def _one_speaker(self) -> ExampleTurn:
        if (self.user is None) == (self.char is None):
            raise ValueError("each example line needs exactly one of 'user' or 'char'")
        return self


class Style(_Strict):
    max_reply_chars: int = Field(400, ge=20, le=4000, description="replies are cut at a sentence boundary below this")
    max_reply_tokens: int = Field(120, ge=8, le=2048, description="max_tokens sent to the model")
    emoji: Literal["keep", "strip", "limit"] = "limit"
    max_emoji: int = Field(2, ge=0, le=50, description="with emoji: limit, emoji beyond this are removed")
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    repetition_penalty: float = Field(
        1.1, ge=1.0, le=2.0, description="above 1 discourages repeating words; a small model loops without it"
    )
    recent_words_penalty: float = Field(
        0.0,
        ge=0.0,
        le=5.0,
        description="llamacpp: taken off the logit of each word the character used in its last few replies, "
        "so one phrase does not become a tic across replies (docs/finetuning.md#tics)",
    )
    repeated_phrase_penalty: float = Field(
        0.8,
        ge=0.0,
        le=5.0,
        description="llamacpp: taken off the logit of a token that would copy three or more tokens of one of the "
        "character's last few replies, growing with the copy's length (docs/finetuning.md#tics)",
    )
    rules: list[str] = Field(default_factory=list, description="extra speaking rules, one line each")


class LoreEntry(_Strict):
    # Before keys, so the keys check can see it.
    constant: bool = Field(False, description="always inserted, keys or not")
    keys: list[str] = Field(default_factory=list, description="words that fire the entry; a constant one needs none")
    content: str = Field(min_length=1)
    secondary_keys: list[str] = Field(default_factory=list)
    selective: bool = False
    enabled: bool = True
    case_sensitive: bool = False
    use_regex: bool = False
    insertion_order: int = 100
    priority: int = 10
    position: Literal["before_char", "after_char"] = "after_char"
    name: str | None = None
    comment: str | None = None
    extensions: dict[str, Any] = Field(default_factory=dict)

    @field_validator("keys")
    @classmethod
    def _non_blank_keys(cls, keys: list[str], info: ValidationInfo) -> list[str]:
        cleaned = [key.strip() for key in keys if key and key.strip()]
        # SillyTavern writes always-inserted entries with no keys: they need none.
        if not cleaned and not info.data.get("constant"):
            raise ValueError("needs at least one non-empty key (or constant: true to always insert it)")
        return cleaned


class Lorebook(_Strict):
    name: str | None = None
    description: str | None = None
    scan_depth: int = Field(4, ge=1, le=100, description="how many recent chat lines are scanned for keys")
    token_budget: int = Field(400, ge=16, le=8192)
    recursive_scanning: bool = False
    entries: list[LoreEntry] = Field(default_factory=list)
    extensions: dict[str, Any] = Field(default_factory=dict)
    # personas.lorebook's word index of the entries' keys, built on the first scan (not card data).
    _key_index: Any = PrivateAttr(default=None)


class AdapterBinding(_Strict):
    name: str = Field(min_length=1, description="the name vLLM serves the adapter under (--lora-modules name=path)")
    path: str | None = Field(None, description="folder with adapter_config.json + adapter_model.safetensors")
    rank: int | None = Field(None, description="LoRA rank; read from adapter_config.json when absent")

    @field_validator("rank")
    @classmethod
    def _vllm_rank(cls, rank: int | None) -> int | None:
        if rank is not None and rank not in VLLM_LORA_RANKS:
            raise ValueError(f"vLLM accepts LoRA ranks {VLLM_LORA_RANKS}, not {rank}")
        return rank


class ModelBinding(_Strict):
    base: str | None = Field(None, description="base model id; None means the configured default")
    adapter: AdapterBinding | None = None


class PersonaCard(_Strict):
    name: str = Field(min_length=1, max_length=80)
    id: str | None = Field(None, description="stable identifier; defaults to the slug of the name")
    nickname: str | None = None
    description: str = ""
    personality: str = ""
    scenario: str = ""
    greeting: str = ""
    alternate_greetings: list[str] = Field(default_factory=list)
    example_dialogues: list[list[ExampleTurn]] = Field(default_factory=list)
    attributes: Attributes = Field(default_factory=Attributes)
    facts: list[str] = Field(default_factory=list, description="persona-chat style first-person facts")
    style: Style = Field(default_factory=Style)
    lorebook: Lorebook = Field(default_factory=Lorebook)
    lorebook_files: list[str] = Field(
        default_factory=list, description="extra world-info JSON files, relative to the card"
    )
    model: ModelBinding = Field(default_factory=ModelBinding)
    system_prompt: str | None = Field(None, description="replaces the default system prompt; {{original}} inserts it")
    post_history_instructions: str | None = None
    tags: list[str] = Field(default_factory=list)
    moderation: ModerationOverrides | None = Field(None, description="this persona's changes to COSTAR_MODERATION_*")
    reactions: Reactions = Field(default_factory=Reactions, description="what the character says to stream events")
    commands: list[CustomCommand] = Field(default_factory=list, description="the channel's own !commands")
    timers: list[StreamTimer] = Field(default_factory=list, description="lines said every few minutes of busy chat")
    overlay: OverlayStyle = Field(default_factory=OverlayStyle, description="caption style on the stream overlay")
    voice: VoiceSection | None = Field(None, description="the character speaks its replies (see docs/overlay.md)")
    creator: str | None = Field(None, description="never sent to the model")
    creator_notes: str | None = Field(None, description="never sent to the model")
    character_version: str | None = Field(None, description="never sent to the model")
    source_format: str = Field("costar", description="costar, chara_card_v2 or chara_card_v3")
    extensions: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _default_id(self) -> PersonaCard:
        if not self.id:
            self.id = slugify(self.name)
        elif self.id != slugify(self.id):
            raise ValueError(f"id must be lowercase letters, digits and dashes, e.g. {slugify(self.id)!r}")
        return self

    @property
    def persona_id(self) -> str:
        assert self.id is not None
        return self.id

    @property
    def display_name(self) -> str:
        return self.nickname or self.name
