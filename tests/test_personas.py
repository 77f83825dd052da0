"""Persona cards: our YAML, SillyTavern V2/V3 (JSON and PNG), world info, and clear refusals."""

from __future__ import annotations

import base64
import json
import shutil
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from personas.errors import PersonaError
from personas.loader import load_card, load_lorebook
from personas.lorebook import active_entries
from personas.registry import BUILTIN_CARDS_DIR, PersonaRegistry
from personas.render import render_system_prompt


def _png_with_chunks(path: Path, chunks: dict[str, dict | str]) -> Path:
    info = PngInfo()
    for name, payload in chunks.items():
        text = payload if isinstance(payload, str) else base64.b64encode(json.dumps(payload).encode()).decode()
        info.add_text(name, text)
    Image.new("RGB", (4, 4)).save(path, pnginfo=info)
    return path


def _v3_card(name: str = "Nova") -> dict:
    return {
        "spec": "chara_card_v3",
        "spec_version": "3.0",
        "data": {
            "name": name,
            "nickname": "Novi",
            "description": "{{char}} is a comet who talks to {{user}}.",
            "personality": "bright",
            "scenario": "",
            "first_mes": "Hi {{user}}!",
            "mes_example": "<START>\n{{user}}: hi\n{{char}}: hello there\n<START>\n<USER>: bye\n<BOT>: see you",
            "creator_notes": "SECRET-CREATOR-NOTE",
            "system_prompt": "{{original}} Always sparkle.",
            "post_history_instructions": "",
            "alternate_greetings": [],
            "tags": ["space"],
            "creator": "someone",
            "character_version": "2",
            "extensions": {"depth_prompt": {"prompt": "x", "depth": 4}, "custom_tool": {"keep": True}},
            "group_only_greetings": [],
            "assets": [{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}],
            "character_book": {
                "entries": [
                    {
                        "keys": ["tail"],
                        "content": "{{char}}'s tail is made of ice.",
                        "enabled": True,
                        "insertion_order": 10,
                        "use_regex": False,
                        "extensions": {},
                    },
                ],
                "extensions": {},
            },
        },
    }


def test_builtin_cards_load_and_pip_is_the_default() -> None:
    registry = PersonaRegistry.from_dirs([BUILTIN_CARDS_DIR])
    assert registry.errors == []
    assert {"pip", "captain-brine"} <= set(registry.names())
    pip = registry.get("PIP")
    assert pip is not None and pip.attributes.nickname == "Pip" and len(pip.attributes.filled()) == 13


def test_seraphina_v2_png_imports_with_lorebook_and_kept_extensions(shared_data: Path) -> None:
    card = load_card(shared_data / "card-v2-seraphina.png")
    assert card.name == "Seraphina" and card.source_format == "chara_card_v2"
    assert len(card.lorebook.entries) == 4
    assert "eldoria" in card.lorebook.entries[0].keys
    assert card.extensions["world"] == "Eldoria" and card.extensions["talkativeness"] == "0.5"
    prompt = render_system_prompt(card)
    assert "Seraphina" in prompt and "{{char}}" not in prompt and "{{user}}" not in prompt
    assert card.creator_notes and card.creator_notes not in prompt


def test_eldoria_world_info_imports_and_fires_on_its_keywords(shared_data: Path) -> None:
    book = load_lorebook(shared_data / "worldinfo-eldoria.json")
    assert len(book.entries) >= 4
    fired = active_entries(book, ["what are the beasts out there?"], lambda text: len(text) // 4)
    assert fired and any("shadowfang" in key for entry in fired for key in entry.keys)
    assert active_entries(book, ["nice weather today"], lambda text: len(text) // 4) == []


def test_v3_json_card_keeps_unknown_extensions_and_v3_fields(tmp_path: Path) -> None:
    path = tmp_path / "nova.json"
    path.write_text(json.dumps(_v3_card()))
    card = load_card(path)
    assert card.source_format == "chara_card_v3" and card.display_name == "Novi"
    assert card.extensions["custom_tool"] == {"keep": True}
    assert card.extensions["chara_card_v3"]["assets"][0]["name"] == "main"
    assert [len(dialogue) for dialogue in card.example_dialogues] == [2, 2]
    prompt = render_system_prompt(card)
    assert "Novi is a comet who talks to chat." in prompt  # V3 nickname replaces {{char}}
    assert prompt.endswith("Always sparkle.") is False and "Always sparkle." in prompt
    assert "SECRET-CREATOR-NOTE" not in prompt


def test_png_prefers_the_v3_chunk_over_v2(tmp_path: Path) -> None:
    v2 = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "OldName"}}
    path = _png_with_chunks(tmp_path / "both.png", {"chara": v2, "ccv3": _v3_card("NewName")})
    assert load_card(path).name == "NewName"


def test_yaml_card_pulls_in_world_info_files(tmp_path: Path, shared_data: Path) -> None:
    shutil.copy(shared_data / "worldinfo-eldoria.json", tmp_path / "eldoria.json")
    (tmp_path / "guard.yaml").write_text("name: Guard\nlorebook_files: [eldoria.json]\n")
    card = load_card(tmp_path / "guard.yaml")
    assert len(card.lorebook.entries) >= 4


@pytest.mark.parametrize(
    ("filename", "content", "field", "problem"),
    [
        ("typo.yaml", "name: A\npersonalty: shy\n", "personalty", "unknown field"),
        ("badtype.yaml", "name: A\nstyle:\n  max_reply_chars: lots\n", "style.max_reply_chars", "integer"),
        ("noname.yaml", "description: nobody\n", "name", "Field required"),
        (
            "badexample.yaml",
            "name: A\nexample_dialogues: [[{user: hi, char: yo}]]\n",
            "example_dialogues[0][0]",
            "exactly one",
        ),
        ("badrank.yaml", "name: A\nmodel: {adapter: {name: a, rank: 12}}\n", "model.adapter.rank", "vLLM accepts"),
        (
            "v2noname.json",
            json.dumps({"spec": "chara_card_v2", "data": {"description": "x"}}),
            "data.name",
            "needs a name",
        ),
        (
            "badlore.json",
            json.dumps(
                {
                    "spec": "chara_card_v2",
                    "data": {"name": "A", "character_book": {"entries": [{"keys": [], "content": "x"}]}},
                }
            ),
            "data.character_book.entries[0].keys",
            "needs at least one non-empty key",
        ),
        ("wrongspec.json", json.dumps({"spec": "chara_card_v9", "data": {"name": "A"}}), "spec", "unknown card spec"),
    ],
)
def test_malformed_cards_are_refused_naming_file_and_field(
    tmp_path: Path, filename: str, content: str, field: str, problem: str
) -> None:
    path = tmp_path / filename
    path.write_text(content)
    with pytest.raises(PersonaError) as caught:
        load_card(path)
    assert caught.value.field == field
    assert filename in str(caught.value) and field in str(caught.value)
    assert problem.lower() in str(caught.value).lower()


@pytest.mark.parametrize(
    ("filename", "payload", "problem"),
    [
        ("broken.yaml", b"name: [unclosed\n", "invalid YAML at line"),
        ("list.yaml", b"- just\n- a list\n", "must be a YAML mapping"),
        ("bad.json", b"{not json", "invalid JSON at line 1"),
        ("array.json", b"[1, 2]", "top level must be an object"),
        ("latin1.yaml", "name: Zo\xe9".encode("latin-1"), "not UTF-8"),
        ("fake.png", b"\x89PNG but not really", "not a readable PNG"),
        ("card.txt", b"name: A", "unsupported card type"),
    ],
)
def test_unreadable_files_are_refused_clearly(tmp_path: Path, filename: str, payload: bytes, problem: str) -> None:
    path = tmp_path / filename
    path.write_bytes(payload)
    with pytest.raises(PersonaError, match=problem) as caught:
        load_card(path)
    assert filename in str(caught.value)


def test_png_without_card_or_with_garbage_chunk_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain.png"
    Image.new("RGB", (2, 2)).save(plain)
    with pytest.raises(PersonaError, match="no 'ccv3' or 'chara'"):
        load_card(plain)
    garbage = _png_with_chunks(tmp_path / "garbage.png", {"chara": "!!!not-base64-json!!!"})
    with pytest.raises(PersonaError) as caught:
        load_card(garbage)
    assert caught.value.field == "chara"


def test_world_info_file_is_not_mistaken_for_a_card(tmp_path: Path, shared_data: Path) -> None:
    with pytest.raises(PersonaError, match="world-info"):
        load_card(shared_data / "worldinfo-eldoria.json")


def test_a_bad_card_is_skipped_and_reported_while_the_others_load(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text("name: Good Bot\n")
    (tmp_path / "bad.yaml").write_text("name: Bad\nstyle: {emoji: sometimes}\n")
    registry = PersonaRegistry.from_dirs([BUILTIN_CARDS_DIR, tmp_path])
    assert "good-bot" in registry.names() and "pip" in registry.names()
    assert [error.path.name if error.path else None for error in registry.errors] == ["bad.yaml"]
    assert registry.errors[0].field == "style.emoji"


# -- hostile files (issue 25, item 11) ---------------------------------------------------------


def _deep_json(levels: int) -> str:
    """A V2 card whose extensions hold ``levels`` nested lists (200 KB at 100,000 levels)."""
    return json.dumps({"spec": "chara_card_v2", "data": {"name": "Deep", "extensions": {"x": "@"}}}).replace(
        '"@"', "[" * levels + "]" * levels
    )


def test_a_deeply_nested_card_is_skipped_and_reported_while_the_others_load(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text("name: Good Bot\n")
    (tmp_path / "deep.json").write_text(_deep_json(100_000))  # past the parser's recursion limit
    (tmp_path / "deepish.json").write_text(_deep_json(500))  # parses, but would trip whatever walks it later
    (tmp_path / "deep.yaml").write_text("name: Deep\nextensions: {x: " + "[" * 5_000 + "]" * 5_000 + "}\n")
    _png_with_chunks(tmp_path / "deep.png", {"chara": base64.b64encode(_deep_json(100_000).encode()).decode()})
    registry = PersonaRegistry.from_dirs([BUILTIN_CARDS_DIR, tmp_path])
    assert "good-bot" in registry.names() and "pip" in registry.names()
    refused = sorted(error.path.name for error in registry.errors if error.path)
    assert refused == ["deep.json", "deep.png", "deep.yaml", "deepish.json"]
    assert all("nested more than 64 levels" in str(error) for error in registry.errors)


def test_persona_list_names_a_deeply_nested_card_and_lists_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    (tmp_path / "good.yaml").write_text("name: Good Bot\n")
    (tmp_path / "deep.json").write_text(_deep_json(100_000))
    monkeypatch.setenv("COSTAR_PERSONAS_DIR", str(tmp_path))
    monkeypatch.setenv("COSTAR_DATA_DIR", str(tmp_path / "data"))
    assert main(["--env-file", "/nonexistent", "persona", "list"]) == 0
    listed = capsys.readouterr().out
    assert "good-bot" in listed and "pip" in listed
    assert "deep.json" in listed and "nested more than 64 levels" in listed


@pytest.mark.parametrize(
    "template",
    ["Hi {user:>999999999}!", "Hi {user!r}", "Hi {user:{count}}", "Hi {user!s:^50}"],
)
def test_format_specs_and_conversions_in_templates_are_refused_at_load(tmp_path: Path, template: str) -> None:
    path = tmp_path / "padded.yaml"
    path.write_text(yaml.safe_dump({"name": "A", "reactions": {"sub": {"template": template}}}))
    with pytest.raises(PersonaError, match="format spec or conversion") as caught:
        load_card(path)
    assert caught.value.field == "reactions.sub"
    command = tmp_path / "command.yaml"
    command.write_text(
        yaml.safe_dump({"name": "A", "commands": [{"name": "hi", "prompt": template.replace("user", "args")}]})
    )
    with pytest.raises(PersonaError, match="format spec or conversion"):
        load_card(command)


# -- lorebook scans that cannot freeze or crawl (issue 25, item 7) -----------------------------


def _tokens(text: str) -> int:
    return len(text) // 4


def test_a_regex_key_that_backtracks_without_end_is_cut_off_and_the_rest_of_the_book_still_fires(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from personas.card import Lorebook
    from personas.lorebook import REGEX_BUDGET_S

    issues_key = "^(\\w+\\s?)+$"  # stdlib re: 5 s on a 24-character line, doubling every 2 characters
    evil = "^(a|aa)+$"  # backtracks in the regex package too: seconds on 34 letters
    book = Lorebook(
        scan_depth=2,
        entries=[
            {"keys": [issues_key], "content": "whole line of words", "use_regex": True},
            {"keys": [evil], "content": "never", "use_regex": True},
            {"keys": ["dragon"], "content": "Dragons sleep under the hill."},
            {"keys": ["dr[a4]gon"], "content": "Regex lore.", "use_regex": True},
        ],
    )
    lines = ["a" * 34 + "!", "aaaa dragon aaaa aaaaaa!"]
    started = time.perf_counter()
    fired = active_entries(book, lines, _tokens)
    first_scan = time.perf_counter() - started
    # Without a time limit the evil key alone takes seconds (more on a busy machine).
    assert first_scan < REGEX_BUDGET_S + 0.9, f"the scan took {first_scan:.2f} s"
    assert "Dragons sleep under the hill." in [entry.content for entry in fired]
    assert "never" not in [entry.content for entry in fired]
    started = time.perf_counter()
    again = active_entries(book, [lines[0] + "a", lines[1]], _tokens)
    assert time.perf_counter() - started < 0.5, "a key that ran out of time is not tried again"
    assert [entry.content for entry in again] == ["Dragons sleep under the hill.", "Regex lore."]
    assert [entry.content for entry in active_entries(book, ["just some words"], _tokens)] == ["whole line of words"]
    warnings = [record.getMessage() for record in caplog.records if "lorebook" in record.getMessage()]
    assert len(warnings) == 1 and evil in warnings[0], warnings  # logged once, then skipped


def test_a_ten_thousand_entry_lorebook_is_scanned_through_its_key_index() -> None:
    from personas.card import Lorebook

    book = Lorebook(
        token_budget=8192,
        entries=[
            {"keys": [f"place{number:05d}", f"Hero {number:05d}"], "content": f"lore {number}"}
            for number in range(10_000)
        ],
    )
    lines = ["we went to PLACE00042 yesterday", "and hero 09999 was there.", "place0004 is no key"]
    active_entries(book, lines, _tokens)  # the index is built on the first scan
    started = time.perf_counter()
    for _ in range(10):
        fired = active_entries(book, lines, _tokens)
    per_scan = (time.perf_counter() - started) / 10
    assert sorted(entry.content for entry in fired) == ["lore 42", "lore 9999"]
    assert per_scan < 0.05, f"{per_scan * 1000:.0f} ms per scan of 10,000 entries"


KEYS_AND_TEXTS = (
    ["wood", "C++", "+1", "dark forest", "Ünïcode", "straße", "x-ray", "<3", "\u017fun", "\u0130stanbul", "a.b"],
    [
        "the wood",
        "Hollywood",
        "I love c++!",
        "+1 from me",
        "a DARK  forest",
        "dark forest",
        "ünïcode rocks",
        "STRASSE",
        "X-RAY vision",
        "xray",
        "i <3 you",
        "the sun",
        "istanbul",
        "a.b.c",
        "<3",
    ],
)


def test_the_key_index_fires_exactly_what_a_search_of_every_key_fires() -> None:
    from personas.card import Lorebook, LoreEntry
    from personas.lorebook import entry_matches

    keys, texts = KEYS_AND_TEXTS
    entries = [
        LoreEntry(keys=[key], content=f"{key} {case}", case_sensitive=case) for key in keys for case in (False, True)
    ]
    entries.append(LoreEntry(keys=["dark"], secondary_keys=["forest"], selective=True, content="selective"))
    book = Lorebook(entries=entries, token_budget=8192, scan_depth=1)
    for text in texts:
        brute_force = [entry.content for entry in entries if entry_matches(entry, text)]
        indexed = [entry.content for entry in active_entries(book, [text], lambda _: 1)]
        assert sorted(indexed) == sorted(brute_force), text
