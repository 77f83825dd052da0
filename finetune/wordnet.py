"""Make Debian's ``wordnet-base`` package usable by NLTK, for METEOR without internet access.

    sudo apt-get install wordnet-base
    .venv/bin/python -m finetune.wordnet   # copies /usr/share/wordnet into .venv/nltk_data/corpora/wordnet

``make`` does both on set-up. The copy goes into the running Python's environment
(``sys.prefix/nltk_data``, one of the folders NLTK searches), so ``make clean`` removes it with the venv.

NLTK reads WordNet 3.0's database files but also wants ``lexnames`` (the 45 lexicographer file
names, not shipped by Debian) and ``index.sense`` (used only to map other WordNet versions, so
an empty file is enough). NLTK refuses symbolic links that leave its data folder, so files are copied.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["LEXNAMES", "install_wordnet", "main"]

# WordNet 3.0's lexicographer files in number order; the syntactic category is 1 noun, 2 verb, 3 adj, 4 adv.
LEXNAMES = [
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
]
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def install_wordnet(source: Path = Path("/usr/share/wordnet"), nltk_data: Path | None = None) -> Path:
    """Copy Debian's WordNet into ``nltk_data`` (default: ``nltk_data`` in this Python's environment)."""
    nltk_data = nltk_data if nltk_data is not None else Path(sys.prefix) / "nltk_data"
    if not (source / "data.noun").exists():
        raise SystemExit(f"no WordNet database in {source}: install Debian's wordnet-base package first")
    target = nltk_data / "corpora" / "wordnet"
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file():
            shutil.copyfile(path, target / path.name)
    lines = [f"{number:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}" for number, name in enumerate(LEXNAMES)]
    (target / "lexnames").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (target / "index.sense").touch()
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m finetune.wordnet", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", type=Path, default=Path("/usr/share/wordnet"))
    parser.add_argument("--nltk-data", type=Path, default=Path(sys.prefix) / "nltk_data")
    args = parser.parse_args(argv)
    print(f"WordNet ready for NLTK in {install_wordnet(args.source, args.nltk_data)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
