"""The shape of the code: layers point down, and callers use the manager's public verbs only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _python_files(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (REPO / folder).rglob("*.py"))


def _imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


@pytest.mark.parametrize("folder", ["memory", "personas"])
def test_lower_layers_import_nothing_from_the_engine_or_the_bot(folder: str) -> None:
    upward = {
        f"{path.relative_to(REPO)}: {module}"
        for path in _python_files(folder)
        for module in _imported_modules(path)
        if module.split(".")[0] in {"engine", "bot", "finetune"}
    }
    assert upward == set()


def test_the_engine_never_imports_a_platform_library() -> None:
    platform_imports = {
        f"{path.relative_to(REPO)}: {module}"
        for path in _python_files("engine")
        for module in _imported_modules(path)
        if module.split(".")[0] in {"discord", "twitchio", "bot"}
    }
    assert platform_imports == set()


def _manager_reach_throughs(path: Path) -> list[str]:
    """``manager.memory`` or ``manager._anything``: reaching past the manager's public verbs."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        owner_name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
        if owner_name.endswith("manager") and (node.attr == "memory" or node.attr.startswith("_")):
            found.append(f"{path.relative_to(REPO)}:{node.lineno}: {owner_name}.{node.attr}")
    return found


def test_callers_use_only_the_managers_public_verbs() -> None:
    reach_throughs = [hit for path in _python_files("bot", "bench") for hit in _manager_reach_throughs(path)]
    assert reach_throughs == []


def test_only_memory_writes_sql() -> None:
    sql_users = [
        str(path.relative_to(REPO))
        for path in _python_files("bot", "engine", "personas", "finetune", "bench")
        if "sqlite3" in _imported_modules(path) or "aiosqlite" in _imported_modules(path)
    ]
    assert sql_users == []


def test_the_bot_and_finetune_never_import_each_other() -> None:
    crossing = {
        f"{path.relative_to(REPO)}: {module}"
        for folder, other in (("bot", "finetune"), ("finetune", "bot"))
        for path in _python_files(folder)
        for module in _imported_modules(path)
        if module.split(".")[0] == other
    }
    assert crossing == set()


# Engine's own rooms point down too (issue 29, item 4): a pair here is a room that must not reach up
# into another. The prompt builder makes ChatMessages (engine.events) without knowing any backend.
UPWARD_IN_ENGINE = [("engine/prompting", "engine.backends")]


@pytest.mark.parametrize(("folder", "above"), UPWARD_IN_ENGINE)
def test_engine_rooms_do_not_import_the_rooms_above_them(folder: str, above: str) -> None:
    upward = {
        f"{path.relative_to(REPO)}: {module}"
        for path in _python_files(folder)
        for module in _imported_modules(path)
        if module == above or module.startswith(above + ".")
    }
    assert upward == set()


def test_the_stream_director_uses_the_managers_verbs_not_its_parts() -> None:
    tree = ast.parse((REPO / "engine" / "stream" / "director.py").read_text(encoding="utf-8"))
    reached = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "manager"
        and node.attr in {"metrics", "moderator", "memory", "backend"}
    } | {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "manager"
        and node.attr in {"metrics", "moderator", "memory", "backend"}
    }
    assert reached == set()
