"""Metrics, the multiple-choice items and the report files (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune.data import Conversation, Message
from finetune.errors import FinetuneError
from finetune.evaluate import ModelScores, load_scores, main, mc_items, reply_items
from finetune.metrics import METEOR_NOTICE, bleu, chrf, distinct_n, meteor, wilson_interval, wordnet_available
from finetune.report import markdown_table, side_by_side, write_reports


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


def _samples(config: str, count: int = 3) -> list[dict[str, str]]:
    return [{"context": f"viewer: q{i}", "reference": f"true {i}", "reply": f"{config} says {i}"} for i in range(count)]


def _scores(config: str, perplexity: float, meteor_score: float | None = None, samples: int = 3) -> ModelScores:
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
        mc_correct=1,
        samples=_samples(config, samples),
    )


def test_the_table_follows_the_hp_papers_columns_then_ours() -> None:
    table = markdown_table([_scores("base", 113.47), _scores("+LoRA", 26.46, 12.0)])
    header, _rule, base, lora = table.splitlines()
    assert header == (
        "| Model config | BLEU | METEOR | Perplexity ↓ | MC accuracy | MC 95% CI | chrF | distinct-1 | distinct-2 |"
    )
    assert base == "| base | 1.50 | n/a | 113.47 | 25.0% | 4.6%–69.9% | 20.00 | 0.500 | 0.800 |"
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


def test_the_mc_interval_is_wilsons_and_narrows_with_more_items() -> None:
    low, high = wilson_interval(5, 10)
    assert (round(low, 3), round(high, 3)) == (0.237, 0.763)  # the textbook value for 5 of 10
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0  # never outside [0, 1]
    wide, narrow = wilson_interval(15, 60), wilson_interval(60, 240)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]


def test_report_md_shows_held_out_prompts_with_every_configs_reply_next_to_the_true_one(tmp_path: Path) -> None:
    write_reports([_scores("base", 40.0, samples=30), _scores("lora", 20.0, samples=30)], tmp_path)

    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    section = report[report.index("## Side by side") :]
    assert section.count("| true reply |") == 10
    assert "viewer: q0" in section and "viewer: q29" in section  # spread over the whole set
    assert "| true reply | true 29 |\n| base | base says 29 |\n| lora | lora says 29 |" in section


def test_side_by_side_escapes_table_pipes_and_shows_empty_replies() -> None:
    scores = _scores("lora", 20.0, samples=1)
    scores.samples[0]["reply"] = ""
    scores.samples[0]["reference"] = "a | b"
    section = side_by_side([scores])
    assert "| true reply | a \\| b |" in section and "| lora | (empty) |" in section


def test_rows_of_an_earlier_report_come_back_unchanged(tmp_path: Path) -> None:
    rows = [_scores("base", 40.0), _scores("lora", 20.0, 12.5)]
    write_reports(rows, tmp_path)

    assert load_scores(tmp_path / "report.json") == rows
    payload = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert payload["results"][0]["mc_interval"] == list(wilson_interval(1, 4))


def test_an_earlier_report_from_another_held_out_set_is_refused(tmp_path: Path) -> None:
    write_reports([_scores("base", 40.0)], tmp_path)  # its samples are not the shipped set's replies

    with pytest.raises(SystemExit, match="different held-out set"):
        main(["--no-base", "--include", str(tmp_path / "report.json"), "--out", str(tmp_path / "again")])


def test_a_file_that_is_not_a_report_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text("{}", encoding="utf-8")
    with pytest.raises(FinetuneError, match=r"not a report\.json"):
        load_scores(tmp_path / "report.json")


def test_set_up_installs_wordnet_so_meteor_is_scored_on_a_fresh_machine() -> None:
    import re

    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text(encoding="utf-8")
    packages = re.search(r"^DEBIAN_PACKAGES := (.*)$", makefile, re.MULTILINE)
    assert packages is not None and "wordnet-base" in packages.group(1).split()
    set_up = makefile.split("$(STAMP): pyproject.toml Makefile\n", 1)[1].split("\n\n", 1)[0]
    assert "$(BIN)/python -m finetune.wordnet" in set_up


def test_wordnet_goes_into_the_running_environment_where_nltk_looks_not_the_home_folder(tmp_path: Path) -> None:
    import subprocess
    import sys

    source, prefix, home = tmp_path / "debian", tmp_path / "venv", tmp_path / "home"
    source.mkdir()
    home.mkdir()
    (source / "data.noun").write_text("nouns", encoding="utf-8")
    # A Python whose environment is `prefix`: what `.venv/bin/python -m finetune.wordnet` is to .venv.
    script = (
        f"import sys; sys.prefix = {str(prefix)!r}\n"
        f"from finetune.wordnet import main; main(['--source', {str(source)!r}])\n"
        "import nltk; print(nltk.data.find('corpora/wordnet/lexnames'))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert found.stdout.strip().endswith(str(prefix / "nltk_data" / "corpora" / "wordnet" / "lexnames"))
    assert not any(home.iterdir())  # nothing left outside the environment `make clean` removes
