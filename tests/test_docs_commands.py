"""The README and docs/ pages write runnable commands the way they run on a fresh clone: from the
venv `make` builds (`.venv/bin/costar`, `.venv/bin/python`), never a bare `costar` (not on PATH)
or `python` (the system's, without costar's packages)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# A command line in a code block: optional prompt, then the bare program.
_BARE_IN_BLOCK = re.compile(r"^\s*(\$ )?(costar|python3?) ")
# Inline code that starts with the system's python: always a command someone copies.
_BARE_PYTHON_INLINE = re.compile(r"`python3? ")


def _bare_commands(page: Path) -> list[str]:
    found = []
    in_block = False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        if line.lstrip().startswith("```"):
            in_block = not in_block
        elif (in_block and _BARE_IN_BLOCK.match(line)) or (not in_block and _BARE_PYTHON_INLINE.search(line)):
            found.append(f"{page.relative_to(REPO)}:{number}: {line.strip()}")
    return found


def test_every_command_in_the_docs_runs_from_the_venv() -> None:
    assert [bare for page in PAGES for bare in _bare_commands(page)] == []


def test_the_readme_says_once_how_to_use_the_venv() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme.count("source .venv/bin/activate") == 1
