"""After a persona switch, the old character's lines are another speaker's: never the new one's turns."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.app import build_manager, close_manager
from engine.events import ChatEvent
from engine.manager import ConversationManager
from engine.prompting.turn_context import summarise_dropped
from memory.records import StoredMessage
from personas.registry import BUILTIN_CARDS_DIR, PersonaRegistry
from tests.speaker_claims import claims_name
from tests.test_read_ahead import ReadsAhead, settle

BRINE_LINES = (
    ("hi captain!", "Ahoy, crew! Captain Brine on deck. Stow your snacks and man the chat."),
    ("who are you?", "Captain Brine, scourge of the asteroid belt, retired. My ship is the Marauder."),
)


def _line(number: int, text: str, channel: str = "deck") -> ChatEvent:
    return ChatEvent("console", channel, "dee", "deckhand_dee", text, f"{channel}-{number}", addresses_bot=True)


async def _brine_then_pip(manager: ConversationManager, channel: str = "deck") -> None:
    """Captain Brine hosts the channel and names himself twice; then a moderator switches to Pip."""
    await manager.switch_persona("console", channel, "captain brine")
    for number, (asked, answer) in enumerate(BRINE_LINES):
        assert await manager.say(await manager.hear(_line(number, asked, channel)), answer) is not None
    await manager.switch_persona("console", channel, "pip")


async def test_after_a_switch_neither_the_reply_nor_the_read_ahead_prompt_holds_the_old_characters_lines(
    make_settings, counter
) -> None:
    backend = ReadsAhead()
    manager = await build_manager(make_settings(backend={"kind": "scripted"}), backend=backend, counter=counter)
    try:
        await _brine_then_pip(manager)
        await manager.hear(ChatEvent("console", "deck", "ann", "ann", "lol the ship", "deck-9"))
        await settle(backend)
        await manager.handle(_line(10, "and who are you now?"))
    finally:
        await close_manager(manager)
    (reply,) = backend.requests
    assert backend.read
    for request in [*backend.read, reply]:
        said = [message.content for message in request.messages[1:]]
        assert not any("scourge" in text or "on deck" in text for text in said)  # neither as Pip nor quoted
        assert "deckhand_dee: who are you?" in said  # what viewers said before the switch stays


def _stored(number: int, text: str, persona_id: str | None, author: str) -> StoredMessage:
    return StoredMessage(
        number, "console", "deck", "", author, text, persona_id is not None, persona_id, datetime.now(UTC)
    )


def test_a_summary_of_trimmed_lines_names_the_previous_character_without_its_words() -> None:
    pip = PersonaRegistry.from_dirs([BUILTIN_CARDS_DIR]).get("pip")
    assert pip is not None
    dropped = [
        _stored(1, "who are you?", None, "dee"),
        _stored(2, "Captain Brine, scourge of the asteroid belt.", "captain-brine", "Captain Brine"),
        _stored(3, "Pip here, hi!", "pip", "Pip"),
    ]
    summary = summarise_dropped(dropped, pip, None)
    assert "Captain Brine co-hosted here before Pip." in summary
    assert 'Pip had said: "Pip here, hi!"' in summary
    assert "scourge" not in summary  # the old character's words are neither Pip's nor quoted


async def test_after_a_switch_the_new_character_does_not_take_the_old_ones_name(
    make_settings, llamacpp_backend, token_counter
) -> None:
    settings = make_settings(backend={"kind": "llamacpp", "seed": 7})
    manager = await build_manager(settings, backend=llamacpp_backend, counter=token_counter)
    replies = []
    try:
        await _brine_then_pip(manager)
        for number, text in enumerate(("who are you?", "what's your name again?", "tell us about your ship")):
            reply = await manager.handle(_line(10 + number, text))
            assert reply is not None
            replies.append(reply.text)
    finally:
        await manager.close()  # the backend is the session's
    assert not [reply for reply in replies if claims_name(reply, "Captain Brine")], replies


async def test_at_a_switch_the_window_keeps_the_newest_lines_and_leaves_the_system_message_as_it_was(
    make_settings, counter
) -> None:
    backend = ReadsAhead()
    settings = make_settings(backend={"kind": "scripted"}, prompt={"lines_kept_at_switch": 4})
    manager = await build_manager(settings, backend=backend, counter=counter)
    try:
        await manager.switch_persona("console", "deck", "captain brine")
        for number in range(6):  # twelve lines: six questions, six answers naming the ship
            heard = await manager.hear(_line(number, f"question {number}?"))
            assert await manager.say(heard, f"Answer {number}, says the Marauder's captain.") is not None
        await manager.switch_persona("console", "deck", "pip")
        await manager.handle(_line(10, "and who are you now?"))
        summary = await manager.memory.latest_summary("console", "deck")
    finally:
        await close_manager(manager)
    system, *rest = backend.requests[-1].messages
    shown = "\n".join(message.content for message in rest)
    assert "deckhand_dee: question 4?" in shown and "deckhand_dee: question 5?" in shown
    assert "question 3?" not in shown  # older than the four newest lines: out of the window
    # No summary for them: it would change the system message, whose evaluated state llama.cpp keeps.
    assert summary is None and system.content == manager.system_prompt(manager.personas.cards["pip"])
