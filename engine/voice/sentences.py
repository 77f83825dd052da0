"""Cuts a reply that grows snapshot by snapshot into sentences, each handed out once, as soon as it ends.

A sentence ends at ``.``, ``!``, ``?`` or ``…`` (closing quotes and brackets included) followed
by whitespace, so "3.5" and "costar.dev" do not end one; the final snapshot ends the last. A very
long run without an end is cut at a comma so speech need not wait for the whole reply. A
snapshot that no longer starts with what was already handed out (moderation fixed or replaced
the text) is reported as rewritten, and cutting starts again from its beginning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Cut", "SentenceCutter"]

_SENTENCE_END = re.compile(r"[.!?…]+[\"'\u201d\u2019)\]]*\s+")  # then closing quotes or brackets
_CLAUSE_END = re.compile(r"[,;:]\s+")


@dataclass(frozen=True, slots=True)
class Cut:
    sentences: list[str] = field(default_factory=list)
    rewritten: bool = False


class SentenceCutter:
    def __init__(self, max_chars: int = 180) -> None:
        self.max_chars = max_chars
        self.consumed = ""  # the start of the reply already handed out as sentences

    def feed(self, text: str, *, final: bool = False) -> Cut:
        rewritten = not text.startswith(self.consumed)
        if rewritten:
            self.consumed = ""
        rest = text[len(self.consumed) :]
        sentences = []
        while rest:
            cut = self._cut_point(rest, final)
            if cut is None:
                break
            sentence = rest[:cut].strip()
            if sentence:
                sentences.append(sentence)
            self.consumed += rest[:cut]
            rest = rest[cut:]
        return Cut(sentences, rewritten)

    def _cut_point(self, rest: str, final: bool) -> int | None:
        end = _SENTENCE_END.search(rest)
        if end is not None:
            return end.end()
        if len(rest) > self.max_chars:
            clauses = [match.end() for match in _CLAUSE_END.finditer(rest, 0, self.max_chars)]
            if clauses:
                return clauses[-1]
        return len(rest) if final else None
