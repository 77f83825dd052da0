"""Every third-party package the code imports is declared in pyproject.toml (main dependencies or an extra).

Imports are read with ``ast`` (top-level and function-local ones alike, plus ``pytest.importorskip("...")``),
so a missing declaration fails here rather than on a fresh machine.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ["bot", "engine", "memory", "personas", "finetune", "bench", "tests"]
FIRST_PARTY = {"bot", "engine", "memory", "personas", "finetune", "bench", "tests"}

# Import name -> distribution name, where the two differ beyond "_" versus "-".
DISTRIBUTION_OF = {
    "PIL": "pillow",
    "yaml": "pyyaml",
    "discord": "discord.py",
    "dotenv": "python-dotenv",
    "ruamel": "ruamel.yaml",
    "piper": "piper-tts",
    "llama_cpp": "llama-cpp-python",
    "google": "google-auth",  # google.oauth2: the credentials the YouTube client library signs with
    "googleapiclient": "google-api-python-client",
    "grpc": "grpcio",  # bot/youtube/stream.py: streamList is gRPC only
}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    return {_normalise(re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0]) for req in requirements}


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "importorskip"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value.split(".")[0])
    return names


def third_party_imports() -> dict[str, set[str]]:
    """Distribution name -> the files that import it."""
    found: dict[str, set[str]] = {}
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for name in _imported(path):
                if name in FIRST_PARTY or name in sys.stdlib_module_names or name == "__future__":
                    continue
                distribution = _normalise(DISTRIBUTION_OF.get(name, name))
                found.setdefault(distribution, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_declared_in_pyproject() -> None:
    declared = _declared()
    missing = {dist: sorted(files) for dist, files in third_party_imports().items() if dist not in declared}
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_the_scan_sees_known_imports() -> None:
    found = third_party_imports()
    assert {"pyyaml", "discord-py", "openai", "httpx2", "torch", "pytest"} <= found.keys()
    assert "asyncio" not in found and "engine" not in found
