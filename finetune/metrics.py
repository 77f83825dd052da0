"""Text metrics for generated replies against the character's true replies.

BLEU and chrF come from sacrebleu (corpus level, its default tokenisation). METEOR comes from
NLTK and needs the WordNet data, which pip cannot install: without it :func:`meteor` returns
None and :data:`METEOR_NOTICE` says why — a missing METEOR is never reported as 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import cache

__all__ = ["METEOR_NOTICE", "bleu", "chrf", "distinct_n", "meteor", "wilson_interval", "wordnet_available"]

METEOR_NOTICE = (
    "METEOR not computed: NLTK's WordNet data is not installed. Install it with "
    "`python -m nltk.downloader wordnet` where the internet is reachable, or offline with "
    "`apt-get install wordnet-base && python -m finetune.wordnet`."
)

_WORDS = re.compile(r"\w+|[^\w\s]")


def _tokens(text: str) -> list[str]:
    return _WORDS.findall(text.lower())


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    import sacrebleu

    return float(sacrebleu.corpus_chrf(list(hypotheses), [list(references)]).score)


@cache
def wordnet_available() -> bool:
    try:
        from nltk.corpus import wordnet

        wordnet.ensure_loaded()
        return bool(wordnet.synsets("dog"))
    except (LookupError, OSError):
        return False


def meteor(hypotheses: Sequence[str], references: Sequence[str]) -> float | None:
    """Mean sentence METEOR ×100, or None when WordNet is missing (see :data:`METEOR_NOTICE`)."""
    if not wordnet_available() or not hypotheses:
        return None
    from nltk.translate.meteor_score import meteor_score

    scores = [meteor_score([_tokens(ref)], _tokens(hyp)) for hyp, ref in zip(hypotheses, references, strict=True)]
    return 100.0 * sum(scores) / len(scores)


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Share of distinct n-grams among all n-grams of all texts (Li et al., 2016)."""
    grams = [tuple(tokens[i : i + n]) for tokens in map(_tokens, texts) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def wilson_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% (z=1.96) Wilson score interval of an accuracy: unlike the normal approximation it
    stays inside [0, 1] and is honest for small test sets (Wilson, 1927)."""
    if total <= 0:
        return (0.0, 1.0)
    share = correct / total
    denominator = 1 + z * z / total
    centre = (share + z * z / (2 * total)) / denominator
    half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))
