"""Metrics, the multiple-choice items and the report files (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune.data import Conversation, Message
from finetune.evaluate import ModelScores, mc_items, reply_items
from finetune.metrics import METEOR_NOTICE, bleu, chrf, distinct_n, meteor, wordnet_available
from finetune.report import markdown_table, write_reports


def _conversation(persona: str, user: str, reply: str, distractors: list[str] | None = None) -> Conversation:
    return Conversation(
        messages=[
            Message(role="system", content=f"You are {persona}."),
            Message(role="user", content=user),
            Message(role="assistant", content=reply),
        ],
        persona=persona,
        distractors=distractors or [],
    )


def test_identical_replies_score_full_bleu_and_chrf() -> None:
    replies = ["Peppermint tea, always!", "Hi hi, welcome in!"]
    assert bleu(replies, replies) == pytest.approx(100.0)
    assert chrf(replies, replies) == pytest.approx(100.0)
    assert bleu(["completely different words here"], ["Peppermint tea, always!"]) < 5


def test_distinct_n_counts_unique_ngrams_over_all_replies() -> None:
    assert distinct_n(["a b a b"], 1) == 0.5
    assert distinct_n(["a b", "a b"], 2) == 0.5
    assert distinct_n([""], 2) == 0.0


def test_meteor_is_none_with_a_notice_when_wordnet_is_missing_never_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    import finetune.metrics

    monkeypatch.setattr(finetune.metrics, "wordnet_available", lambda: False)
    assert meteor(["hi there"], ["hi there"]) is None
    assert "WordNet" in METEOR_NOTICE and "python -m finetune.wordnet" in METEOR_NOTICE


def test_meteor_scores_matching_replies_high_when_wordnet_is_installed() -> None:
    if not wordnet_available():
        pytest.skip(METEOR_NOTICE)
    reply = "Peppermint tea is perfect for boss fights and mild panic."
    same, unrelated = meteor([reply], [reply]), meteor(["Completely unrelated words."], [reply])
    assert same is not None and unrelated is not None
    assert same > 95 > unrelated


def test_every_character_turn_becomes_a_reply_item_with_its_context() -> None:
    conversation = Conversation(
        messages=[
            Message(role="system", content="S"),
            Message(role="user", content="u1"),
            Message(role="assistant", content="a1"),
            Message(role="user", content="u2"),
            Message(role="assistant", content="a2"),
        ],
        persona="pip",
    )
    items = reply_items([conversation])
    assert [(len(item.context), item.reference) for item in items] == [(2, "a1"), (4, "a2")]


def test_multiple_choice_uses_the_conversations_distractors_first() -> None:
    [item] = mc_items([_conversation("pip", "hi", "Hi hi!", ["Begone.", "Hello, user.", "Ahoy!"])])
    assert item.candidates == ("Hi hi!", "Begone.", "Hello, user.", "Ahoy!")
    assert item.context[-1]["content"] == "hi"


def test_multiple_choice_borrows_other_characters_replies_when_a_conversation_has_none() -> None:
    conversations = [
        _conversation("pip", "hi", "Hi hi!"),
        _conversation("grim", "hi", "Begone."),
        _conversation("brine", "hi", "Ahoy!"),
        _conversation("bot", "hi", "Hello, user."),
        _conversation("pip", "tea?", "Peppermint!"),
    ]
    item = mc_items(conversations, seed=1)[0]
    assert item.candidates[0] == "Hi hi!"
    assert set(item.candidates[1:]) == {"Begone.", "Ahoy!", "Hello, user."}  # other personas before Pip's own lines


def _scores(config: str, perplexity: float, meteor_score: float | None = None) -> ModelScores:
    return ModelScores(
        config=config,
        perplexity=perplexity,
        bleu=1.5,
        chrf=20.0,
        meteor=meteor_score,
        distinct_1=0.5,
        distinct_2=0.8,
        mc_accuracy=0.25,
        replies=10,
        mc_items=4,
    )


def test_the_table_follows_the_hp_papers_columns_then_ours() -> None:
    table = markdown_table([_scores("base", 113.47), _scores("+LoRA", 26.46, 12.0)])
    header, _rule, base, lora = table.splitlines()
    assert header == "| Model config | BLEU | METEOR | Perplexity ↓ | MC accuracy | chrF | distinct-1 | distinct-2 |"
    assert base == "| base | 1.50 | n/a | 113.47 | 25.0% | 20.00 | 0.500 | 0.800 |"
    assert lora.startswith("| +LoRA | 1.50 | 12.00 | 26.46 |")


def test_reports_are_written_as_markdown_json_and_png(tmp_path: Path) -> None:
    markdown = write_reports([_scores("base", 40.0), _scores("lora", 20.0)], tmp_path, dataset="heldout.jsonl")

    assert (tmp_path / "report.md").read_text(encoding="utf-8").startswith("| Model config |")
    assert "n/a: METEOR not computed" in markdown
    payload = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert [row["perplexity"] for row in payload["results"]] == [40.0, 20.0]
    assert payload["meteor_notice"] == METEOR_NOTICE
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_debian_wordnet_is_copied_with_the_files_nltk_also_needs(tmp_path: Path) -> None:
    from finetune.wordnet import install_wordnet

    source = tmp_path / "debian"
    source.mkdir()
    (source / "data.noun").write_text("nouns", encoding="utf-8")
    (source / "bin").mkdir()

    target = install_wordnet(source, tmp_path / "nltk_data")

    assert (target / "data.noun").read_text(encoding="utf-8") == "nouns" and not (target / "data.noun").is_symlink()
    lexnames = (target / "lexnames").read_text(encoding="utf-8").splitlines()
    assert len(lexnames) == 45 and lexnames[0] == "00\tadj.all\t3" and lexnames[3] == "03\tnoun.Tops\t1"
    assert (target / "index.sense").exists()
