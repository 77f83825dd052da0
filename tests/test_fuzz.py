"""Fuzzing with hypothesis: hostile cards, chat text and names never crash the bot or break a budget.

Bounded (max_examples, no deadline) so the suite stays quick on two CPU cores.
"""

from __future__ import annotations

import base64
import contextlib
import io
import itertools
import json
import unicodedata
from datetime import UTC, datetime

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from bot.twitch.limits import TWITCH_LIMITS, TWITCH_MAX_MESSAGE_CHARS
from engine.backends.base import ChatMessage
from engine.events import ChatEvent
from engine.moderation.checks import caps_shouting, repeated
from engine.moderation.moderator import Moderator
from engine.moderation.normalize import (
    _unicode_passes,
    fold_leet,
    matching_words,
    normalize_for_matching,
    squash,
    word_sequence,
)
from engine.output.postprocess import postprocess
from engine.prompting.builder import PromptBuilder, PromptInputs, viewer_message
from engine.prompting.tokens import MESSAGE_OVERHEAD_TOKENS
from engine.settings import ModerationSettings
from memory.records import StoredMessage
from personas.card import PersonaCard, Style
from personas.errors import PersonaError
from personas.loader import parse_card_bytes

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
CARD_FIELDS = [
    *PersonaCard.model_fields,
    "spec",
    "data",
    "first_mes",
    "mes_example",
    "character_book",
    "entries",
    "keys",
    "content",
    "style",
    "max_reply_chars",
    "lorebook",
    "model",
    "adapter",
    "rank",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(CARD_FIELDS) | st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=25,
)
card_like = st.dictionaries(st.sampled_from(CARD_FIELDS), json_values, max_size=8)
unicode_text = st.text(st.characters(codec=None, exclude_categories=("Cs",)), max_size=200)  # type: ignore[arg-type]


def _parse_only_raises_persona_error(data: bytes, suffix: str) -> None:
    with contextlib.suppress(PersonaError):
        parse_card_bytes(data, suffix)


# -- persona cards -----------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=400), st.sampled_from([".yaml", ".json", ".png", ".txt"]))
def test_arbitrary_bytes_as_a_card_only_ever_raise_persona_error(data: bytes, suffix: str) -> None:
    _parse_only_raises_persona_error(data, suffix)


@FUZZ
@given(card_like)
def test_card_shaped_yaml_only_ever_raises_persona_error(fields: dict) -> None:
    _parse_only_raises_persona_error(yaml.safe_dump(fields, allow_unicode=True).encode(), ".yaml")


@FUZZ
@given(card_like, st.booleans())
def test_card_shaped_json_only_ever_raises_persona_error(fields: dict, wrapped: bool) -> None:
    body = {"spec": "chara_card_v2", "spec_version": "2.0", "data": fields} if wrapped else fields
    _parse_only_raises_persona_error(json.dumps(body, default=str).encode(), ".json")


@FUZZ
@given(st.text(max_size=40), st.sampled_from(["chara", "ccv3", "other"]), st.booleans())
def test_png_cards_with_odd_chunks_only_ever_raise_persona_error(payload: str, chunk: str, encode: bool) -> None:
    info = PngInfo()
    info.add_text(chunk, base64.b64encode(payload.encode()).decode() if encode else payload)
    image = io.BytesIO()
    Image.new("RGB", (1, 1)).save(image, format="PNG", pnginfo=info)
    _parse_only_raises_persona_error(image.getvalue(), ".png")


@FUZZ
@given(card_like)
def test_card_json_inside_a_png_only_ever_raises_persona_error(fields: dict) -> None:
    info = PngInfo()
    info.add_text(
        "chara", base64.b64encode(json.dumps({"spec": "chara_card_v2", "data": fields}, default=str).encode()).decode()
    )
    image = io.BytesIO()
    Image.new("RGB", (1, 1)).save(image, format="PNG", pnginfo=info)
    _parse_only_raises_persona_error(image.getvalue(), ".png")


# -- chat text ---------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(unicode_text)
def test_normalisation_is_idempotent_and_never_crashes(text: str) -> None:
    once = normalize_for_matching(text)
    assert normalize_for_matching(once) == once
    matching_words(text)
    squash(text, leet=True)


# The per-line hot path takes shortcuts (ASCII fast paths, regexes instead of loops); each must
# agree with the plain definition it replaces, written out here.
ascii_text = st.text(st.characters(max_codepoint=127), max_size=200)
chat_like = st.lists(st.sampled_from(["a", "b", "aa", "spam", "I", "x", "!!", "ｉ", "ünd", "1gn0r3"]), max_size=14).map(
    " ".join
)


def _repeated_by_definition(normal: str, max_chars: int, max_words: int) -> bool:
    if any(normal[i : i + max_chars] == normal[i] * max_chars for i in range(len(normal))):
        return True
    words, run = normal.split(), 1
    for previous, word in itertools.pairwise(words):
        run = run + 1 if word == previous else 1
        if run >= max_words:
            return True
    return False


def _spelled_out_by_definition(words: tuple[str, ...]) -> list[str]:
    joined, run = [], []
    for word in [*words, ""]:
        if len(word) == 1:
            run.append(word)
            continue
        if len(run) >= 3:
            joined.append("".join(run))
        run = []
    return joined


@settings(max_examples=300, deadline=None)
@given(ascii_text | chat_like)
def test_hot_path_shortcuts_agree_with_their_definitions(text: str) -> None:
    if text.isascii():
        assert normalize_for_matching(text) == _unicode_passes(text)
        assert caps_shouting(text, min_letters=1, ratio=0.5) == (
            sum(map(str.isupper, text)) >= max(1, sum(map(str.isupper, text)) + sum(map(str.islower, text))) * 0.5
        )
    normal = normalize_for_matching(text)
    for max_chars, max_words in ((3, 2), (10, 6)):
        assert repeated(text, max_chars=max_chars, max_words=max_words) == _repeated_by_definition(
            normal, max_chars, max_words
        )
    words = word_sequence(text)
    assert matching_words(text) == (*words, *_spelled_out_by_definition(tuple(words)))
    assert squash(text) == "".join(filter(str.isalnum, normal))
    for word in words:
        assert fold_leet(word) == (
            word.translate(str.maketrans("0134578@$!|+9€", "oieastbasilt" + "ge"))
            if any(char.isalpha() for char in word)
            else word
        )


# Text that may start with a command prefix, often behind characters nobody sees.
_UNSEEN = ("Cf", "Zs", "Zl", "Zp", "Cc")
unseen_text = st.text(st.characters(categories=_UNSEEN, exclude_characters="\x00"), max_size=3)  # type: ignore[arg-type]
maybe_command = st.tuples(unseen_text, st.sampled_from(["/", ".", "", " /."]), unseen_text, unicode_text).map("".join)


def _reads_as_command(text: str) -> bool:
    """Twitch's reading, written out here independently of engine.output.limits."""
    visible = [char for char in text if unicodedata.category(char) not in _UNSEEN]
    return visible[:1] in (["/"], ["."])


@FUZZ
@given(maybe_command, unicode_text, st.sampled_from(["twitch", "discord", "console"]))
def test_moderation_never_crashes_and_never_passes_a_twitch_command(text: str, name: str, platform: str) -> None:
    moderator = Moderator(ModerationSettings(_env_file=None))
    persona = PersonaCard(name="Pip", system_prompt=name or None)
    event = ChatEvent(platform=platform, channel_id="c", author_id="a", author_name=name, text=text)
    moderator.check_input(event, persona)
    verdict = moderator.check_output(text, persona, event)
    if verdict.passes:
        assert platform != "twitch" or not _reads_as_command(verdict.text), repr(verdict.text)
    else:  # withheld: nothing, or the safe line, is said instead
        assert verdict.text in ("", moderator.settings.safe_line), repr(verdict.text)


@FUZZ
@given(maybe_command)
def test_twitch_post_processing_never_leaves_a_command(text: str) -> None:
    processed = postprocess(text, style=Style(), limits=TWITCH_LIMITS)
    assert not _reads_as_command(processed), repr(processed)
    assert len(processed) <= TWITCH_MAX_MESSAGE_CHARS


# -- prompt builder ----------------------------------------------------------------------------


def _line(index: int, name: str, text: str, is_character: bool) -> StoredMessage:
    return StoredMessage(
        id=index + 1,
        platform="twitch",
        channel_id="c",
        author_id=name,
        author_name=name,
        text=text,
        is_character=is_character,
        persona_id="pip" if is_character else None,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        platform_message_id=str(index),
        reply_to_id=None,
    )


@FUZZ
@given(
    system=unicode_text,
    memory=st.none() | unicode_text,
    history=st.lists(st.tuples(unicode_text, unicode_text, st.booleans()), max_size=30),
    context=st.lists(unicode_text, max_size=4),
    name=unicode_text,
    text=st.text(max_size=3000),
    context_tokens=st.integers(256, 1024),
    reply_tokens=st.integers(8, 160),
)
def test_the_prompt_never_exceeds_its_budget_whatever_chat_says(
    token_counter, system, memory, history, context, name, text, context_tokens, reply_tokens
) -> None:
    builder = PromptBuilder(token_counter, context_tokens=context_tokens, trim_to=0.5)
    inputs = PromptInputs(
        system_prompt=system,
        stable_memory=memory,
        history=[_line(i, author, said, mine) for i, (author, said, mine) in enumerate(history)],
        turn_context=context,
        new_line=viewer_message(name, text),
        window_start_id=1,
    )
    built = builder.build(inputs, reply_tokens=reply_tokens)
    recount = sum(token_counter.count(m.content) + MESSAGE_OVERHEAD_TOKENS for m in built.messages) + 8
    assert recount == built.prompt_tokens <= context_tokens - reply_tokens
    assert built.messages[0].role == "system" and built.messages[-1].role == "user"
    assert all(isinstance(message, ChatMessage) for message in built.messages)


# -- regressions found by the fuzzers above ----------------------------------------------------


def _png_with(chunk: str, text: str) -> bytes:
    info = PngInfo()
    info.add_text(chunk, text)
    image = io.BytesIO()
    Image.new("RGB", (1, 1)).save(image, format="PNG", pnginfo=info)
    return image.getvalue()


def test_a_png_card_chunk_with_non_ascii_text_is_a_persona_error() -> None:
    with pytest.raises(PersonaError, match="not base64"):
        parse_card_bytes(_png_with("chara", "\x80"), ".png")


def test_a_card_whose_spec_is_not_text_is_a_persona_error() -> None:
    with pytest.raises(PersonaError, match="unknown card spec"):
        parse_card_bytes(json.dumps({"name": None, "spec": []}).encode(), ".json")


def test_card_lists_and_extensions_of_the_wrong_type_are_persona_errors() -> None:
    for field, value in (("tags", 3), ("alternate_greetings", "hi"), ("extensions", [1, 2])):
        with pytest.raises(PersonaError, match=f"data.{field}"):
            parse_card_bytes(
                json.dumps({"spec": "chara_card_v2", "data": {"name": "X", field: value}}).encode(), ".json"
            )
