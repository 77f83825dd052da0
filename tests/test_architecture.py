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


def _identifiers(path: Path) -> set[str]:
    """Every name the code of ``path`` spells: variables, attributes, functions, classes, arguments,
    keywords and the modules it imports (strings and comments are data and prose, not names)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.arg | ast.keyword):
            names.update(filter(None, [node.arg]))  # a keyword's arg is None for **kwargs
        elif isinstance(node, ast.alias):
            names.update(filter(None, (node.name, node.asname)))
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _platform_names() -> list[str]:
    from bot.platforms import PLATFORMS

    return [platform.name for platform in PLATFORMS]


@pytest.mark.parametrize("platform", _platform_names())
def test_the_engine_names_no_platform(platform: str) -> None:
    """A platform is a plug-in (issue 29): no engine module, class, setting or import is named after one."""
    named = {
        f"{path.relative_to(REPO)}: {name}"
        for path in _python_files("engine")
        for name in _identifiers(path) | set(path.relative_to(REPO).with_suffix("").parts)
        if platform in name.casefold()
    }
    assert named == set()


@pytest.mark.parametrize("platform", _platform_names())
def test_each_platform_package_declares_its_settings_limits_and_start_up_check(platform: str) -> None:
    from pydantic_settings import BaseSettings

    from bot import platforms
    from engine.output.limits import PlatformLimits
    from engine.settings import known_variables, variable_name

    [declared] = [entry for entry in platforms.PLATFORMS if entry.name == platform]
    assert (REPO / "bot" / platform / "plugin.py").is_file(), "each platform is a package with its plug-in module"
    assert issubclass(declared.settings, BaseSettings)
    assert declared.settings.__module__.startswith(f"bot.{platform}."), "its settings section lives in its package"
    assert isinstance(declared.limits(), PlatformLimits)
    assert declared.limits.__module__.startswith(f"bot.{platform}.")
    settings = platforms.load_settings(None)
    assert isinstance(settings.platforms[platform], declared.settings), "found through the registry"
    assert declared.configured(settings) in (True, False)
    own_variables = {variable_name(declared.settings, field) for field in declared.settings.model_fields}
    assert own_variables and not own_variables & known_variables(), "engine's own sections know none of them"


def test_the_bot_and_finetune_never_import_each_other() -> None:
    crossing = {
        f"{path.relative_to(REPO)}: {module}"
        for folder, other in (("bot", "finetune"), ("finetune", "bot"))
        for path in _python_files(folder)
        for module in _imported_modules(path)
        if module.split(".")[0] == other
    }
    assert crossing == set()


# Engine's own rooms point down too (issue 29, item 4), bottom first: a room may import rooms of its
# own layer and the layers below, never one above. ``engine.settings`` is the one configuration
# every room reads and stays out of the order.
ENGINE_LAYERS: list[set[str]] = [
    {"errors", "events", "base"},  # the shared vocabulary and helpers: clocks, bounded tables, repeat counts
    {"heard"},  # a stored line with its verdict and repeat count
    {"flow", "control", "output", "prompting", "serving", "observability"},
    {"moderation", "backends", "stage"},
    {"recall", "stream", "voice"},
    {"manager"},  # the one way in, speaking for every room below
    {"hearing"},  # the streamer's voice, heard and answered through the manager
]


def _engine_room(path: Path) -> str:
    parts = path.relative_to(REPO / "engine").parts
    return parts[0].removesuffix(".py")


def _layer_of(room: str) -> int | None:
    return next((index for index, rooms in enumerate(ENGINE_LAYERS) if room in rooms), None)


def test_every_engine_room_has_a_place_in_the_layers() -> None:
    rooms = {_engine_room(path) for path in _python_files("engine")} - {"__init__", "settings"}
    assert rooms - set().union(*ENGINE_LAYERS) == set()


def test_engine_rooms_import_only_their_own_layer_and_the_layers_below() -> None:
    upward = set()
    for path in _python_files("engine"):
        layer = _layer_of(_engine_room(path))
        if layer is None:
            continue
        for module in _imported_modules(path):
            parts = module.split(".")
            above = _layer_of(parts[1]) if parts[0] == "engine" and len(parts) > 1 else None
            if above is not None and above > layer:
                upward.add(f"{path.relative_to(REPO)}: {module}")
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


def test_the_engine_names_no_storage_implementation_only_the_memory_store_protocol() -> None:
    named = {
        f"{path.relative_to(REPO)}:{node.lineno}"
        for path in _python_files("engine")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if (isinstance(node, ast.Name) and node.id == "SqliteMemoryStore")
        or (isinstance(node, ast.Attribute) and node.attr == "SqliteMemoryStore")
        or (isinstance(node, ast.alias) and node.name == "SqliteMemoryStore")
        or (isinstance(node, ast.ImportFrom) and node.module == "memory.store")
        or (isinstance(node, ast.Import) and any(alias.name == "memory.store" for alias in node.names))
    }
    assert named == set()


def _manager_attributes_used(path: Path) -> set[str]:
    return {
        node.attr
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute)
        and (node.value.attr if isinstance(node.value, ast.Attribute) else getattr(node.value, "id", "")) == "manager"
    }


def test_the_split_manager_keeps_every_verb_its_callers_use() -> None:
    from engine.manager import ConversationManager

    init = next(
        node
        for node in ast.walk(ast.parse((REPO / "engine" / "manager" / "conversation.py").read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef) and node.name == "__init__"
    )
    set_in_init = {
        target.attr
        for node in ast.walk(init)
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Attribute)
    }
    used = {
        attr
        for path in _python_files("bot", "bench", "engine/stream", "engine/hearing")
        for attr in _manager_attributes_used(path)
    }
    assert used  # the callers were found
    assert {attr for attr in used if not hasattr(ConversationManager, attr) and attr not in set_in_init} == set()
