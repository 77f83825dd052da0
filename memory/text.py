"""Text SQLite can store: the one rule for what a chat line may hold on its way into memory.

Python strings may carry lone UTF-16 surrogates (a JSON ``"\\ud800"`` escape from a platform or a
transcript, a terminal's undecodable bytes read with ``surrogateescape``); SQLite stores UTF-8, and
encoding such a string fails. :func:`storable_text` keeps every character that can be stored,
joins surrogate pairs that were split into two characters, and puts U+FFFD where a lone one stood.
"""

from __future__ import annotations

__all__ = ["is_storable", "storable_text"]


def is_storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def storable_text(text: str) -> str:
    """``text`` unchanged when it can be stored, else with each lone surrogate as U+FFFD."""
    if is_storable(text):
        return text
    # UTF-16 with surrogatepass joins a valid high+low pair back into one character; decoding with
    # "replace" turns each surrogate left alone into U+FFFD.
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
