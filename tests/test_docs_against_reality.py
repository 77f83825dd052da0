"""What the docs promise about the CLI is what it does: `costar settings` lists every setting with
secrets masked, `persona check` names every bad field and points a YAML error at the opening
quote, and `costar vllm-args` prints what docs/serving.md shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_costar_settings_lists_every_setting_with_secrets_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.platforms import known_variables

    monkeypatch.setenv("DISCORD_TOKEN", "discord-secret-value")
    monkeypatch.setenv("COSTAR_LOG_LEVEL", "DEBUG")
    assert main(["--env-file", "/nonexistent", "settings"]) == 0
    out = capsys.readouterr().out
    shown = dict(line.split("   #")[0].split("=", 1) for line in out.splitlines())
    assert set(shown) == known_variables()
    assert shown["DISCORD_TOKEN"] == "********" and "discord-secret-value" not in out
    assert shown["COSTAR_LOG_LEVEL"] == "DEBUG" and "COSTAR_LOG_LEVEL=DEBUG   # set" in out
    assert shown["COSTAR_DEFAULT_PERSONA"] == "pip"


def test_the_configuration_page_points_at_costar_settings() -> None:
    page = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert "costar settings" in page and "costar --help` and" not in page


def test_persona_check_names_every_bad_field_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = tmp_path / "bad.yaml"
    card.write_text("name: 5\ndescription: fine\nstyle: {max_chars: 10}\nmood: grumpy\n", encoding="utf-8")
    assert main(["--env-file", "/nonexistent", "persona", "check", str(card)]) == 2
    err = capsys.readouterr().err
    assert "3 problems" in err
    for field in ("field 'name'", "field 'style.max_chars'", "field 'mood'"):
        assert field in err, field


def test_an_unclosed_quote_is_reported_where_it_opened(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = tmp_path / "quote.yaml"
    lines = ["name: Quill", "greeting: hi", 'description: "A scribe who', "tags: [a, b]"] + [
        f"k{n}: v" for n in range(4)
    ]
    card.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["--env-file", "/nonexistent", "persona", "check", str(card)]) == 2
    err = capsys.readouterr().err
    assert "invalid YAML at line 3, column 14: a quote opened here is never closed" in err


def test_vllm_args_prints_the_base_part_docs_serving_shows(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--env-file", "/nonexistent", "vllm-args"]) == 0
    printed = [line.rstrip(" \\") for line in capsys.readouterr().out.splitlines()]
    page = (REPO / "docs" / "serving.md").read_text(encoding="utf-8")
    example = re.search(r"\$ \.venv/bin/costar vllm-args\n(.*?)```", page, re.DOTALL)
    assert example is not None
    shown = [line.rstrip(" \\") for line in example.group(1).splitlines()]
    # The shipped cards are tested here without adapters: the lines before the LoRA flags must match.
    base_part = [line for line in printed if "lora" not in line]
    assert base_part == [line for line in shown if "lora" not in line]
    assert '"base_model_name":"smollm2"' in example.group(1)
