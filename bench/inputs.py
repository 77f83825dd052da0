"""One home for the benches' rule on inputs: a missing input file stops the bench at once, with
one line (exit 2) naming the flag and the path, before any model, database or thread starts.

Several benches default to the chat CSV in ../shared/data, which a fresh clone does not have;
without this check one of them failed deep inside its event loop and never exited.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["require_inputs"]


def require_inputs(parser: argparse.ArgumentParser, inputs: dict[str, Path | str | None]) -> None:
    """Exit 2 with ``PROG: FLAG: no such file: PATH`` for the first input that does not exist.

    ``inputs`` maps each flag (or positional name) to the path given; None means not asked for.
    """
    for flag, given in inputs.items():
        if given is None:
            continue
        path = Path(given)
        if not path.exists():
            hint = (
                " (the shared chat data is not in this checkout: pass a chat CSV of your own)"
                if ("shared" in path.parts)
                else ""
            )
            parser.exit(2, f"{parser.prog}: {flag}: no such file: {path}{hint}\n")
