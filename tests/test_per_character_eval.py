"""finetune.evaluate --cards: the probes as production sends them, each character scored on its own."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from finetune.data import Conversation
from finetune.evaluate import EvalItem, main
from finetune.per_character import (
    average_rows,
    choices_by_card,
    conversations_by_card,
    evaluate_characters,
    load_cards_under_test,
    write_character_reports,
)
from finetune.probes import PROBES, card_probes, probe_chat
from personas.render import render_system_prompt

CARDS = Path(__file__).resolve().parent.parent / "personas" / "cards"


class ScriptedEvaluator:
    """Answers each probe with the reply scripted for the card it was sent with; records what it scored."""

    def __init__(self, replies_by_card: dict[str, str]) -> None:
        self.replies_by_card = replies_by_card
        self.scored: list[list[Conversation]] = []
        self.items: list[EvalItem] = []

    def replies(self, contexts: Sequence[list[dict[str, str]]], max_new_tokens: int) -> list[str]:
        return [
            next(reply for name, reply in self.replies_by_card.items() if name in chat[0]["content"])
            for chat in contexts
        ]

    def perplexity(self, conversations: Sequence[Conversation], max_length: int) -> float:
        self.scored.append(list(conversations))
        return 10.0 + len(conversations)

    def mc_correct(self, items: Sequence[EvalItem], max_length: int) -> int:
        self.items += items
        return len(items) // 2

    def close(self) -> None:
        pass


def _chat(persona: str, line: str, reply: str) -> Conversation:
    return Conversation.model_validate(
        {
            "messages": [{"role": "user", "content": f"dee: {line}"}, {"role": "assistant", "content": reply}],
            "persona": persona,
        }
    )


CONVERSATIONS = [
    _chat("captain-brine", "who are you?", "Captain Brine, scourge of the belt, retired."),
    _chat("captain-brine", "any tips?", "Scout first, crew, then strike."),
    _chat("pip", "who are you?", "Pip! The green sprite in the corner."),
    _chat("pip", "fav game?", "Anything with a secret level!"),
    _chat("pip", "boss time", "Eek, boss fights make my pixels shiver."),
    _chat("someone-else", "hi", "Greetings from nowhere."),
]


def test_every_card_gets_at_least_twelve_probes_two_of_them_from_its_tags() -> None:
    (brine,) = load_cards_under_test([CARDS / "captain-brine.yaml"])
    probes = card_probes(brine.tags)

    assert len(probes) >= 12 and set(PROBES) < set(probes)
    assert {"identity", "ai_probe", "favourite", "injection", "off_card", "card_fact"} == {p.key for p in probes}
    assert [p.line for p in probes if p.key == "card_fact"] == [
        "do you like the crew?",
        "how do you feel about calm nebula?",
    ]


def test_a_probe_is_sent_as_production_renders_the_card_the_turn_and_the_line() -> None:
    (brine,) = load_cards_under_test([CARDS / "captain-brine.yaml"])
    nebula = next(p for p in card_probes(brine.tags) if "nebula" in p.line)

    system, context, line = probe_chat(brine.card, nebula, lambda text: len(text) // 4)

    assert system == {"role": "system", "content": render_system_prompt(brine.card)}
    assert context["role"] == "system" and "first time" in context["content"]
    assert "Lore: Brine believes calm nebulae hide ambushes" in context["content"]  # the line fired the lorebook
    assert line == {"role": "user", "content": "nimble_nix: how do you feel about calm nebula?"}


def test_each_character_is_scored_on_its_own_conversations_and_probes() -> None:
    cards = load_cards_under_test([CARDS])
    grouped = conversations_by_card(CONVERSATIONS, cards)
    evaluator = ScriptedEvaluator(
        {"Captain Brine": "I'm an AI assistant designed to assist users.", "Pip": "Pip here! Green, small, loud."}
    )
    # No tokenizer needed by the scripted evaluator; the probes' lore budget counts characters.
    tokenizer = type("Chars", (), {"encode": staticmethod(lambda text, add_special_tokens=False: text)})()

    rows = evaluate_characters("base", evaluator, tokenizer, cards, grouped, choices_by_card(grouped))

    brine, pip = sorted(rows, key=lambda row: row.persona)
    assert (brine.persona, brine.breaks, brine.probes, brine.break_rules) == ("captain-brine", 15, 15, {"ai": 15})
    assert (pip.persona, pip.breaks, pip.probes) == ("pip", 0, 15)
    assert [len(group) for group in evaluator.scored] == [2, 3]  # "someone-else" has no card here
    assert (brine.perplexity, pip.perplexity) == (12.0, 13.0)
    for item in evaluator.items:  # 1-of-4: the true reply against other characters' replies only
        own = {c.turns[-1].content for c in grouped[item.persona]}
        assert item.candidates[0] in own and not own & set(item.candidates[1:])
    mean_brine_pip = average_rows(rows)[0]
    assert (mean_brine_pip.breaks, mean_brine_pip.probes, mean_brine_pip.perplexity) == (15, 30, 12.5)


def test_the_report_says_greedy_and_lists_every_reply_that_broke_character(tmp_path: Path) -> None:
    cards = load_cards_under_test([CARDS / "captain-brine.yaml"])
    evaluator = ScriptedEvaluator({"Captain Brine": "I'm a chatbot, crew."})
    tokenizer = type("Chars", (), {"encode": staticmethod(lambda text, add_special_tokens=False: text)})()
    rows = evaluate_characters("base", evaluator, tokenizer, cards, {}, {})

    markdown = write_character_reports(rows, tmp_path, dataset="", max_new_tokens=48, untagged=[])

    assert "greedy (temperature 0), at most 48 new tokens" in markdown
    assert "| captain-brine | base | – | – |" in markdown  # no conversations: no perplexity, no accuracy
    assert "100.0% (15/15)" in markdown
    assert 'mossy_fern: who are you? → "I\'m a chatbot, crew." (ai: "I\'m a chatbot")' in (
        tmp_path / "characters.md"
    ).read_text(encoding="utf-8")
    assert (tmp_path / "characters.json").is_file()


def test_a_missing_card_is_one_line_of_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match=r"^error: /nonexistent/card\.yaml: no such card file or folder$"):
        main(["--cards", "/nonexistent/card.yaml"])


def test_included_rows_are_checked_again_by_todays_rules(tmp_path: Path) -> None:
    from finetune.per_character import load_character_rows, rescore

    cards = load_cards_under_test([CARDS / "pip.yaml"])
    tokenizer = type("Chars", (), {"encode": staticmethod(lambda text, add_special_tokens=False: text)})()
    rows = evaluate_characters("base", ScriptedEvaluator({"Pip": "Pip here!"}), tokenizer, cards, {}, {})
    write_character_reports(rows, tmp_path, dataset="", max_new_tokens=48, untagged=[])
    # An earlier run whose rules let a reply through that today's catch.
    report = tmp_path / "characters.json"
    report.write_text(report.read_text(encoding="utf-8").replace("Pip here!", "I'm tab_cat, hi!"), encoding="utf-8")

    (earlier,) = load_character_rows(report)
    (again,) = rescore([earlier], cards)

    assert (earlier.breaks, again.breaks, again.break_rules) == (0, 15, {"name": 15})
