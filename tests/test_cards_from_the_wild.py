"""Cards as people download them: SillyTavern's quirks are read, not refused; mistakes say what to fix."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from personas.errors import PersonaError
from personas.loader import load_card
from personas.lorebook import active_entries
from personas.registry import PersonaRegistry
from personas.sillytavern import card_json_from_png


def _write_png_card(path: Path, card: dict) -> Path:
    info = PngInfo()
    info.add_text("chara", base64.b64encode(json.dumps(card).encode()).decode())
    Image.new("RGB", (4, 4)).save(path, pnginfo=info)
    return path


def _seraphina(shared_data: Path) -> dict:
    return card_json_from_png((shared_data / "card-v2-seraphina.png").read_bytes())


def test_a_constant_lore_entry_without_keys_loads_and_is_always_inserted(shared_data: Path, tmp_path: Path) -> None:
    card = _seraphina(shared_data)
    entries = card["data"]["character_book"]["entries"]
    entries.append({"keys": [], "content": "The forest glade is always misty.", "constant": True, "enabled": True})
    loaded = load_card(_write_png_card(tmp_path / "seraphina.png", card))
    fired = active_entries(loaded.lorebook, ["hello there"], lambda text: len(text) // 4)
    assert "The forest glade is always misty." in [entry.content for entry in fired]


def test_a_keyless_entry_that_is_not_constant_is_still_refused_with_the_fix(shared_data: Path, tmp_path: Path) -> None:
    card = _seraphina(shared_data)
    card["data"]["character_book"]["entries"].append({"keys": [], "content": "never fires", "enabled": True})
    with pytest.raises(PersonaError, match=r"constant: true"):
        load_card(_write_png_card(tmp_path / "seraphina.png", card))


def test_cards_with_non_latin_names_get_distinct_typeable_ids(shared_data: Path, tmp_path: Path) -> None:
    for file_name, name in [
        ("sakura.png", "さくら"),
        ("hana.png", "花子"),
        ("emoji-a.png", "🌸"),
        ("emoji-b.png", "🌼"),
    ]:
        card = _seraphina(shared_data)
        card["data"]["name"] = name
        _write_png_card(tmp_path / file_name, card)
    registry = PersonaRegistry.from_dirs([tmp_path])
    assert sorted(registry.names()) == ["persona", "persona-2", "さくら", "花子"]
    assert registry.get("さくら").name == "さくら"  # type: ignore[union-attr]
    assert registry.get("花子").name == "花子"  # type: ignore[union-attr]
    assert {registry.get("persona").name, registry.get("persona-2").name} == {"🌸", "🌼"}  # type: ignore[union-attr]


def test_v1_fields_beside_an_empty_data_object_are_read_with_a_warning(
    shared_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    v1 = {key: value for key, value in _seraphina(shared_data)["data"].items() if key != "character_book"}
    path = tmp_path / "flat.json"
    path.write_text(json.dumps({"spec": "chara_card_v2", "spec_version": "2.0", "data": {}, **v1}), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        card = load_card(path)
    assert card.name == "Seraphina" and card.greeting == v1["first_mes"].strip()
    assert "reading the V1 fields at the top level" in caplog.text


@pytest.mark.parametrize("content", [b"", b"GIF89a not a png at all", b"\x89PNG\r\n\x1a\n truncated"])
def test_a_broken_png_says_what_the_file_is_and_what_a_card_png_holds(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(PersonaError) as caught:
        load_card(path)
    message = str(caught.value)
    assert str(path) in message and "BytesIO" not in message
    assert "'chara' (V2) or 'ccv3' (V3) tEXt chunk" in message


def test_a_png_card_attaches_world_info_through_its_sidecar(shared_data: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copy(shared_data / "card-v2-seraphina.png", tmp_path / "seraphina.png")
    shutil.copy(shared_data / "worldinfo-eldoria.json", tmp_path / "eldoria.json")
    (tmp_path / "seraphina.costar.yaml").write_text(
        "# costar's fields for seraphina.png\nlorebook_files: [eldoria.json]\nstyle: {max_reply_chars: 200}\n"
    )
    registry = PersonaRegistry.from_dirs([tmp_path])
    assert registry.errors == [] and registry.names() == ["seraphina"]
    card = registry.cards["seraphina"]
    assert len(card.lorebook.entries) == 4 + 4 and card.style.max_reply_chars == 200
    fired = active_entries(card.lorebook, ["have you seen a shadowfang?"], lambda text: len(text) // 4)
    assert any("shadowfang" in [key.lower() for key in entry.keys] for entry in fired)


def test_a_sidecar_with_a_field_it_cannot_set_is_refused_naming_it(shared_data: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copy(shared_data / "card-v2-seraphina.png", tmp_path / "seraphina.png")
    (tmp_path / "seraphina.costar.yaml").write_text("lorebook_file: [eldoria.json]\n")
    with pytest.raises(PersonaError, match=r"seraphina\.costar\.yaml: field 'lorebook_file': a sidecar sets only"):
        load_card(tmp_path / "seraphina.png")
