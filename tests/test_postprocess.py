"""Post-processing: what the model says becomes what the character may say."""

from __future__ import annotations

from engine.output.limits import PlatformLimits
from engine.output.postprocess import postprocess, shorten_to
from personas.card import Style


def test_cuts_at_stop_sequences_and_special_tokens() -> None:
    raw = "Sure thing!\nBob: and then I said<|im_end|>"
    assert postprocess(raw, style=Style(), stops=["\nBob:"]) == "Sure thing!"
    assert postprocess("Fine.<|im_end|>garbage", style=Style()) == "Fine."


def test_strips_a_leading_speaker_label_of_the_character() -> None:
    assert postprocess("Pip: hello chat", style=Style(), speaker_names=["Pip"]) == "hello chat"
    assert postprocess("**Pip**: hi", style=Style(), speaker_names=["Pip"]) == "hi"
    assert postprocess("Pipsqueak: hi", style=Style(), speaker_names=["Pip"]) == "Pipsqueak: hi"


def test_emoji_policies() -> None:
    text = "gg 😀 wp 🎉 ez 🔥"
    assert postprocess(text, style=Style(emoji="keep")) == text
    assert postprocess(text, style=Style(emoji="strip")) == "gg  wp  ez"
    assert postprocess(text, style=Style(emoji="limit", max_emoji=1)) == "gg 😀 wp  ez"


def test_length_is_cut_at_a_sentence_boundary() -> None:
    text = "First sentence here. Second one is longer and keeps going. " + "word " * 100
    assert (
        postprocess(text, style=Style(max_reply_chars=70))
        == "First sentence here. Second one is longer and keeps going."
    )
    assert len(shorten_to("x" * 500, 100)) <= 100


def test_platform_limits_single_line_no_command_prefix_no_mass_mentions() -> None:
    limits = PlatformLimits(max_chars=500, single_line=True, forbidden_prefixes=("/", "."))
    assert postprocess("/ban @everyone\nnow", style=Style(), limits=limits) == "ban everyone now"
    assert postprocess(". . /me dances", style=Style(), limits=limits) == "me dances"
    assert postprocess("hey @here", style=Style(), limits=PlatformLimits()) == "hey here"
