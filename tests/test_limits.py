"""Platform output limits: the one command-prefix rule and the one mass-mention rule."""

from __future__ import annotations

from bot.discord.delivery import DISCORD_LIMITS
from bot.twitch.limits import TWITCH_LIMITS, TWITCH_MAX_MESSAGE_CHARS
from engine.moderation import checks
from engine.output.limits import (
    COMMAND_PREFIXES,
    cap_mentions,
    has_mass_mention,
    neutralise_mass_mentions,
    starts_with_command,
    strip_command_prefix,
)
from engine.output.postprocess import postprocess
from personas.card import Style


def test_a_message_starting_with_slash_or_dot_is_a_twitch_command() -> None:
    assert starts_with_command("/ban someone")
    assert starts_with_command("  .timeout someone 600")
    assert not starts_with_command("well /ban is a command")
    assert not starts_with_command("hello.")


def test_stripping_the_prefix_removes_every_leading_prefix_and_space() -> None:
    assert strip_command_prefix("/me waves") == "me waves"
    assert strip_command_prefix(" / . /ban x") == "ban x"
    assert strip_command_prefix("plain text") == "plain text"
    assert strip_command_prefix("//") == ""
    assert strip_command_prefix("#x", ("#",)) == "x", "a platform may name its own prefixes"


def test_everyone_and_here_are_mass_mentions_and_become_plain_words() -> None:
    for text in ("hi @everyone", "@here look", "@@Everyone", "@ here"):
        assert has_mass_mention(text), text
    assert not has_mass_mention("hi @alice, here we go, everyone")
    assert neutralise_mass_mentions("hey @everyone and @@here!") == "hey everyone and here!"


def test_only_the_first_few_mentions_keep_their_at_sign() -> None:
    assert cap_mentions("@a @b @c @d @e", keep=3) == "@a @b @c d e"


def test_twitch_and_discord_limits_are_defined_once() -> None:
    assert TWITCH_LIMITS.max_chars == TWITCH_MAX_MESSAGE_CHARS == 500
    assert TWITCH_LIMITS.single_line and TWITCH_LIMITS.forbidden_prefixes == COMMAND_PREFIXES
    assert DISCORD_LIMITS.max_chars is None and not DISCORD_LIMITS.forbidden_prefixes
    assert DISCORD_LIMITS.neutralise_mass_mentions and TWITCH_LIMITS.neutralise_mass_mentions


def test_postprocess_moderation_and_the_twitch_guard_apply_the_same_rules() -> None:
    from bot.twitch.limits import twitch_safe

    raw = "/ @everyone hello"
    assert postprocess(raw, style=Style(), limits=TWITCH_LIMITS) == "everyone hello"
    assert twitch_safe(raw) == "everyone hello"
    assert checks.mass_mention(raw, max_mentions=3)
    assert checks.strip_command_prefix(checks.defuse_mentions(raw)) == "everyone hello"


def test_a_reply_is_one_chat_message_on_single_line_platforms_and_never_ends_on_a_dangling_list_marker() -> None:
    from engine.output.limits import as_chat_message

    listed = "Three tips:\n1. Jump\n2. Dodge\n3."
    assert as_chat_message(listed, single_line=True) == "Three tips: 1. Jump 2. Dodge"
    assert as_chat_message(listed, single_line=False) == "Three tips:\n1. Jump\n2. Dodge"
    assert as_chat_message("```py\nprint(1)\n```", single_line=True) == "print(1)"
    assert as_chat_message("I came in at number 1.", single_line=True) == "I came in at number 1."


async def test_every_platform_registers_its_own_limits_on_the_manager(settings, counter) -> None:
    from bot.app import build_manager, close_manager
    from bot.console.adapter import CONSOLE_LIMITS
    from bot.youtube.limits import YOUTUBE_LIMITS
    from engine.backends.scripted import ScriptedBackend

    manager = await build_manager(settings, backend=ScriptedBackend(), counter=counter)
    try:
        limits = dict(manager.platform_limits)
    finally:
        await close_manager(manager)
    assert limits == {
        "console": CONSOLE_LIMITS,
        "discord": DISCORD_LIMITS,
        "twitch": TWITCH_LIMITS,
        "youtube": YOUTUBE_LIMITS,
    }, "declared by each platform's package, none by engine"
    assert CONSOLE_LIMITS.single_line and YOUTUBE_LIMITS.max_chars == 200


# Characters a reader cannot see, which Twitch would still find a command behind (issue 13, item 7).
INVISIBLE_LEADS = ["\u200b", "\u200c", "\u2060", "\ufeff", "\u00ad", "\u180e", "\u3000", "\x07", "\u200b \u2060"]


def test_invisible_characters_before_a_command_prefix_do_not_hide_it() -> None:
    from bot.twitch.limits import twitch_safe

    for lead in INVISIBLE_LEADS:
        for command in ("/ban streamer", ".timeout streamer 600"):
            text = lead + command
            assert starts_with_command(text), repr(text)
            assert strip_command_prefix(text) == command[1:], repr(text)
            assert postprocess(text, style=Style(), limits=TWITCH_LIMITS) == command[1:], repr(text)
            assert twitch_safe(text) == command[1:], repr(text)
    assert strip_command_prefix("/\u200b/\ufeff.ban x") == "ban x", "hidden between prefixes too"
    assert strip_command_prefix("hi \u200b/ban") == "hi \u200b/ban", "only the start of a message matters"


# Characters that are drawn as nothing or a blank although Unicode files them as letters, symbols or
# combining marks, and characters drawn as a slash (issue 25, item 9).
BLANK_LEADS = ["\u3164", "\u2800", "\u0301", "\u115f\u1160", "\uffa0", "\u034f", "\u2800\u3164 "]
SLASH_LOOKALIKES = ["\uff0f", "\u2215", "\u2044", "\u29f8"]


def test_blank_lookalikes_and_slash_lookalikes_before_a_command_do_not_pass_the_send_guard() -> None:
    from bot.twitch.limits import twitch_safe

    leads = BLANK_LEADS + SLASH_LOOKALIKES + [blank + slash for blank in BLANK_LEADS for slash in SLASH_LOOKALIKES]
    for lead in leads:
        text = lead + "/ban streamer"
        assert starts_with_command(text), repr(text)
        assert strip_command_prefix(text) == "ban streamer", repr(text)
        assert postprocess(text, style=Style(), limits=TWITCH_LIMITS) == "ban streamer", repr(text)
        assert twitch_safe(text) == "ban streamer", repr(text)
    for slash in SLASH_LOOKALIKES:
        assert starts_with_command(slash + "ban streamer"), "a slash look-alike reads as the command itself"
    assert not starts_with_command("\u2026 anyway"), "an ellipsis is not a prefix"
    assert strip_command_prefix("\u00e9t\u00e9 /ban") == "\u00e9t\u00e9 /ban", "letters with accents are letters"


def test_blank_lookalikes_are_folded_for_matching_like_spaces() -> None:
    from engine.moderation.normalize import normalize_for_matching

    assert normalize_for_matching("\u3164hi\u2800there\uffa0") == "hi there"
