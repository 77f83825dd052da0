"""The one format of a viewer's chat line as a model reads it, at serving time and in training.

Serving (the prompt builder) and training data (``finetune.converters.chatlogs``) both call
:func:`viewer_line`, so an adapter is trained on exactly what it will be shown.
"""

from __future__ import annotations

import re

__all__ = ["defuse_control_tokens", "speaker_label", "viewer_line"]

# Tokenizers read "<|im_start|>" and friends as the real control tokens even inside a user
# message, so a viewer could open a fake system turn; their look-alikes mean nothing to a model.
_CONTROL_TOKEN = re.compile(r"<\||\|>|</?s>|\[/?INST\]", re.IGNORECASE)
_DEFUSED = str.maketrans({"<": "‹", ">": "›", "[": "(", "]": ")"})
_QUOTE_CHARS = 300


def defuse_control_tokens(text: str) -> str:
    return _CONTROL_TOKEN.sub(lambda match: match.group(0).translate(_DEFUSED), text)


def speaker_label(name: str) -> str:
    # A display name must not be able to fake a second speaker or a role label.
    return " ".join(defuse_control_tokens(name).replace(":", " ").split())[:40] or "viewer"


def viewer_line(author_name: str, text: str, replying_to: tuple[str, str] | None = None) -> str:
    """``name: text``, or ``name (replying to other: "quote"): text``; control tokens defused.

    ``replying_to`` (speaker, text) quotes the line it answers; the quote is viewer text too.
    """
    label = speaker_label(author_name)
    if replying_to is not None:
        speaker, quoted = replying_to
        label += f' (replying to {speaker_label(speaker)}: "{defuse_control_tokens(quoted[:_QUOTE_CHARS])}")'
    return f"{label}: {defuse_control_tokens(text)}"
