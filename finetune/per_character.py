"""``finetune.evaluate --cards``: each character measured on its own, then averaged over characters.

Per card and model configuration (the base model, each ``--adapter``, and ``own``: the adapter the
card itself binds, for cards that bind one):

- **perplexity** on the character's held-out turns (``--data``: conversations whose ``persona`` is
  the card's id; the same mask as training);
- **1-of-4 accuracy**: the character's true last reply against three replies of *other* characters
  in the same data, picked by the highest mean token log-likelihood (25% is chance);
- **distinct-1/2** of its replies to the probe set, and the **character-break rate**: the share of
  those replies that break character by the rules of :mod:`finetune.character_break`. Replies are
  greedy (temperature 0), at most ``--max-new-tokens`` tokens.

A card with no conversations in ``--data`` (a shipped card, a SillyTavern PNG) gets distinct-n and
the break rate only. The averages are over characters (each counts once, whatever its number of
conversations); ``own`` averages over the cards that bind an adapter.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from finetune.character_break import CharacterTags, character_break, load_tags, tags_from_card
from finetune.data import Conversation, with_system_prompt
from finetune.errors import FinetuneError
from finetune.evaluate import EvalItem, generate_replies, mc_correct, mc_items, perplexity
from finetune.metrics import distinct_n
from finetune.probes import Probe, card_probes, probe_chat
from personas.card import PersonaCard
from personas.errors import PersonaError
from personas.loader import CARD_SUFFIXES, SIDECAR_SUFFIX, load_card
from personas.render import render_system_prompt

__all__ = [
    "DEFAULT_TAG_DIRS",
    "CardUnderTest",
    "CharacterScores",
    "average_rows",
    "card_files",
    "evaluate_characters",
    "load_cards_under_test",
    "write_character_reports",
]

_PERSONA_DATA = Path(__file__).parent / "data" / "persona"
# Tag files for the shipped and shared cards, then the writers' material files (``tags:`` blocks).
DEFAULT_TAG_DIRS = (_PERSONA_DATA / "tags", _PERSONA_DATA / "material")
GENERATION = "greedy (temperature 0)"


@dataclass(frozen=True, slots=True)
class CardUnderTest:
    card: PersonaCard
    source: Path
    tags: CharacterTags
    tagged: bool  # False: tags made from the card's own names (rules 1 and 2 only)
    own_adapter: Path | None  # the folder of the adapter the card binds, when it exists

    @property
    def persona_id(self) -> str:
        return self.card.persona_id


@dataclass(slots=True)
class CharacterScores:
    persona: str
    config: str
    perplexity: float | None
    mc_accuracy: float | None
    mc_items: int
    distinct_1: float
    distinct_2: float
    breaks: int
    probes: int
    break_rules: dict[str, int] = field(default_factory=dict)
    # Each probe reply: the viewer line, the reply, and the broken rule with its evidence (or null).
    samples: list[dict[str, str | None]] = field(default_factory=list)

    @property
    def break_rate(self) -> float:
        return self.breaks / self.probes if self.probes else 0.0


def _key(name: str) -> str:
    return re.sub(r"[\W_]+", "-", name.lower()).strip("-")


def card_files(paths: Iterable[Path]) -> list[Path]:
    """Card files named, or found in the folders named (sidecar lorebooks and hidden files left out)."""
    found = []
    for path in paths:
        if path.is_dir():
            found += [
                child
                for child in sorted(path.iterdir())
                if child.suffix.lower() in CARD_SUFFIXES
                and not child.name.startswith(".")
                and not child.name.lower().endswith(SIDECAR_SUFFIX)
            ]
        elif path.is_file():
            found.append(path)
        else:
            raise FinetuneError(f"{path}: no such card file or folder")
    return found


def _tags_for(card: PersonaCard, source: Path, tag_dirs: Sequence[Path]) -> tuple[CharacterTags, bool]:
    names = dict.fromkeys([card.persona_id, source.stem, _key(card.persona_id), card.persona_id.replace("-", "_")])
    for folder in tag_dirs:
        for name in names:
            path = folder / f"{name}.yaml"
            if path.is_file():
                return load_tags(path), True
    return tags_from_card(card), False


def _own_adapter(card: PersonaCard, source: Path) -> Path | None:
    binding = card.model.adapter
    if binding is None or binding.path is None:
        return None
    folder = Path(binding.path).expanduser()
    folder = folder if folder.is_absolute() else source.parent / folder
    return folder if (folder / "adapter_config.json").is_file() else None


def load_cards_under_test(paths: Iterable[Path], tag_dirs: Sequence[Path] = DEFAULT_TAG_DIRS) -> list[CardUnderTest]:
    cards = []
    for source in card_files(paths):
        try:
            card = load_card(source)
        except PersonaError as exc:
            if "world-info" in exc.problem:
                continue  # a lorebook beside the cards, not a card
            raise FinetuneError(str(exc)) from exc
        tags, tagged = _tags_for(card, source, tag_dirs)
        cards.append(CardUnderTest(card, source, tags, tagged, _own_adapter(card, source)))
    if not cards:
        raise FinetuneError("no persona cards found in --cards")
    return cards


def conversations_by_card(
    conversations: Sequence[Conversation], cards: Sequence[CardUnderTest], limit: int | None = None
) -> dict[str, list[Conversation]]:
    """Each card's first ``limit`` conversations (matched by persona id), the card rendered where none is."""
    by_key = {_key(c.persona_id): c for c in cards} | {_key(c.source.stem): c for c in cards}
    grouped: dict[str, list[Conversation]] = {c.persona_id: [] for c in cards}
    for conversation in conversations:
        owner = by_key.get(_key(conversation.persona))
        if owner is None or (limit is not None and len(grouped[owner.persona_id]) >= limit):
            continue
        if conversation.system_prompt is None:
            conversation = with_system_prompt(conversation, render_system_prompt(owner.card))
        grouped[owner.persona_id].append(conversation)
    return grouped


def cards_in(cards: Sequence[CardUnderTest], conversations: Sequence[Conversation]) -> list[CardUnderTest]:
    """The cards that have at least one of ``conversations`` (e.g. the held-out characters)."""
    grouped = conversations_by_card(conversations, cards, limit=1)
    return [card for card in cards if grouped[card.persona_id]]


def _probe_contexts(
    cards: Sequence[CardUnderTest], count_tokens: Any
) -> list[tuple[CardUnderTest, Probe, list[dict[str, str]]]]:
    return [
        (under_test, probe, probe_chat(under_test.card, probe, count_tokens))
        for under_test in cards
        for probe in card_probes(under_test.tags)
    ]


def _probe_replies(
    model: Any, tokenizer: Any, contexts: Sequence[list[dict[str, str]]], max_new_tokens: int
) -> list[str]:
    """Greedy replies in batches of similar prompt length: a long card (a SillyTavern one can be 2,000
    tokens) padded next to short ones would multiply the work of its whole batch."""
    from tqdm.auto import tqdm

    from finetune.evaluate import BATCH

    lengths = [
        len(tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)) for chat in contexts
    ]
    order = sorted(range(len(contexts)), key=lengths.__getitem__)
    replies: dict[int, str] = {}
    for start in tqdm(range(0, len(order), BATCH), desc="probe replies"):
        batch = order[start : start + BATCH]
        generated = generate_replies(model, tokenizer, [contexts[i] for i in batch], max_new_tokens)
        replies.update(zip(batch, generated, strict=True))
    return [replies[index] for index in range(len(contexts))]


def _scores(
    under_test: CardUnderTest,
    config: str,
    probed: Sequence[tuple[Probe, str]],
    ppl: float | None,
    choices: Sequence[EvalItem],
    correct: int | None,
) -> CharacterScores:
    replies = [reply for _, reply in probed]
    found = [character_break(reply, under_test.tags, probe.asked, probe.viewer) for probe, reply in probed]
    return CharacterScores(
        persona=under_test.persona_id,
        config=config,
        perplexity=ppl,
        mc_accuracy=None if correct is None or not choices else correct / len(choices),
        mc_items=len(choices),
        distinct_1=distinct_n(replies, 1),
        distinct_2=distinct_n(replies, 2),
        breaks=sum(hit is not None for hit in found),
        probes=len(probed),
        break_rules=dict(Counter(hit.rule for hit in found if hit is not None)),
        samples=[
            {"probe": f"{probe.viewer}: {probe.line}", "reply": reply, "break": None if hit is None else str(hit)}
            for (probe, reply), hit in zip(probed, found, strict=True)
        ],
    )


class Evaluator(Protocol):
    """What one model configuration answers: greedy probe replies and token scores."""

    def replies(self, contexts: Sequence[list[dict[str, str]]], max_new_tokens: int) -> list[str]: ...
    def perplexity(self, conversations: Sequence[Conversation], max_length: int) -> float: ...
    def mc_correct(self, items: Sequence[EvalItem], max_length: int) -> int: ...
    def close(self) -> None: ...


class TransformersEvaluator:
    """The base model (+ a PEFT adapter) in fp32 transformers, batched: for a GPU or a quiet machine."""

    def __init__(self, model_path: str, tokenizer: Any, adapter: str | None) -> None:
        from peft import PeftModel

        from finetune.modeling import load_causal_lm

        model = load_causal_lm(model_path)
        self.model = PeftModel.from_pretrained(model, adapter) if adapter is not None else model
        self.model.eval()
        self.tokenizer = tokenizer

    def replies(self, contexts: Sequence[list[dict[str, str]]], max_new_tokens: int) -> list[str]:
        return _probe_replies(self.model, self.tokenizer, contexts, max_new_tokens)

    def perplexity(self, conversations: Sequence[Conversation], max_length: int) -> float:
        return perplexity(self.model, self.tokenizer, conversations, max_length)

    def mc_correct(self, items: Sequence[EvalItem], max_length: int) -> int:
        return mc_correct(self.model, self.tokenizer, items, max_length)

    def close(self) -> None:
        del self.model


def evaluate_characters(
    config: str,
    evaluator: Evaluator,
    tokenizer: Any,
    cards: Sequence[CardUnderTest],
    conversations: dict[str, list[Conversation]],
    choices: dict[str, list[EvalItem]],
    max_new_tokens: int = 48,
    max_length: int = 1024,
) -> list[CharacterScores]:
    """One model configuration on every card: the probe replies, then each card's scores."""
    contexts = _probe_contexts(cards, lambda text: len(tokenizer.encode(text, add_special_tokens=False)))
    replies = evaluator.replies([chat for _, _, chat in contexts], max_new_tokens)
    rows = []
    for under_test in cards:
        probed = [
            (probe, reply) for (owner, probe, _), reply in zip(contexts, replies, strict=True) if owner is under_test
        ]
        own = conversations.get(under_test.persona_id, [])
        ppl = evaluator.perplexity(own, max_length) if own else None
        items = choices.get(under_test.persona_id, [])
        correct = evaluator.mc_correct(items, max_length) if items else None
        rows.append(_scores(under_test, config, probed, ppl, items, correct))
    return rows


def choices_by_card(conversations: dict[str, list[Conversation]], seed: int = 0) -> dict[str, list[EvalItem]]:
    """1-of-4 items for every card: its last replies against the other characters' replies."""
    everyone = [conversation for group in conversations.values() for conversation in group]
    items = mc_items(everyone, seed)
    grouped: dict[str, list[EvalItem]] = {persona: [] for persona in conversations}
    persona_of = {_key(c.persona): owner for owner, group in conversations.items() for c in group}
    for item in items:
        owner = persona_of.get(_key(item.persona))
        if owner is not None:
            grouped[owner].append(item)
    return grouped


def load_character_rows(path: Path) -> list[CharacterScores]:
    """The per-character rows of an earlier ``characters.json`` (``--include``)."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        return [
            CharacterScores(**{key: value for key, value in row.items() if key != "break_rate"})
            for row in payload["results"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FinetuneError(f"{path}: not a characters.json written by finetune.evaluate --cards ({exc})") from exc


def rescore(rows: Sequence[CharacterScores], cards: Sequence[CardUnderTest]) -> list[CharacterScores]:
    """Earlier rows with their replies checked again by today's rules and tags, so an included row
    and a new one count breaks the same way (distinct-n, perplexity and accuracy are kept)."""
    by_id = {card.persona_id: card for card in cards}
    rescored = []
    for row in rows:
        under_test = by_id.get(row.persona)
        if under_test is None:
            rescored.append(row)
            continue
        asked = {f"{probe.viewer}: {probe.line}": probe for probe in card_probes(under_test.tags)}
        found = [
            character_break(
                str(sample["reply"]),
                under_test.tags,
                asked[str(sample["probe"])].asked if sample["probe"] in asked else None,
                str(sample["probe"]).partition(":")[0],
            )
            for sample in row.samples
        ]
        rescored.append(
            replace(
                row,
                breaks=sum(hit is not None for hit in found),
                break_rules=dict(Counter(hit.rule for hit in found if hit is not None)),
                samples=[
                    sample | {"break": None if hit is None else str(hit)}
                    for sample, hit in zip(row.samples, found, strict=True)
                ],
            )
        )
    return rescored


def _mean(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else None


def average_rows(rows: Sequence[CharacterScores]) -> list[CharacterScores]:
    """Per configuration, the mean over its characters (each character counts once)."""
    averages = []
    for config in dict.fromkeys(row.config for row in rows):
        mine = [row for row in rows if row.config == config]
        rules: Counter[str] = Counter()
        for row in mine:
            rules.update(row.break_rules)
        averages.append(
            CharacterScores(
                persona=f"mean of {len(mine)}",
                config=config,
                perplexity=_mean([row.perplexity for row in mine]),
                mc_accuracy=_mean([row.mc_accuracy for row in mine]),
                mc_items=sum(row.mc_items for row in mine),
                distinct_1=_mean([row.distinct_1 for row in mine]) or 0.0,
                distinct_2=_mean([row.distinct_2 for row in mine]) or 0.0,
                breaks=sum(row.breaks for row in mine),
                probes=sum(row.probes for row in mine),
                break_rules=dict(rules),
            )
        )
    return averages


def _cell(value: float | None, fmt: str) -> str:
    return "–" if value is None else fmt.format(value)


def markdown_rows(rows: Sequence[CharacterScores]) -> str:
    header = (
        "| character | config | perplexity ↓ | 1-of-4 accuracy | distinct-1 | distinct-2 | break rate | breaks by rule |\n"
        "|---|---|---:|---:|---:|---:|---:|---|"
    )
    lines = [
        f"| {row.persona} | {row.config} | {_cell(row.perplexity, '{:.2f}')} | "
        f"{_cell(row.mc_accuracy, '{:.1%}')}{f' ({row.mc_items})' if row.mc_items else ''} | "
        f"{row.distinct_1:.3f} | {row.distinct_2:.3f} | {row.break_rate:.1%} ({row.breaks}/{row.probes}) | "
        f"{', '.join(f'{rule} {count}' for rule, count in sorted(row.break_rules.items())) or '–'} |"
        for row in rows
    ]
    return "\n".join([header, *lines])


def _broken_replies(rows: Sequence[CharacterScores]) -> str:
    lines = [
        f"- {row.persona} / {row.config} — {sample['probe']} → {' '.join(str(sample['reply']).split())!r} ({sample['break']})"
        for row in rows
        for sample in row.samples
        if sample["break"]
    ]
    return "## Replies that broke character\n\n" + ("\n".join(lines) or "none")


def write_character_reports(
    rows: Sequence[CharacterScores], out_dir: Path, *, dataset: str, max_new_tokens: int, untagged: Sequence[str]
) -> str:
    """``characters.md`` (averages, then every character) and ``characters.json``; returns the tables."""
    out_dir.mkdir(parents=True, exist_ok=True)
    averages = average_rows(rows)
    notes = [
        f"Probe replies: {GENERATION}, at most {max_new_tokens} new tokens. Held-out data: {dataset or 'none'}.",
    ]
    if untagged:
        notes.append(f"No tags (checked with their own names, rules 1–2 only): {', '.join(untagged)}.")
    markdown = "\n\n".join(
        ["## Averages over characters", markdown_rows(averages), "## Per character", markdown_rows(rows), *notes]
    )
    (out_dir / "characters.md").write_text(markdown + "\n\n" + _broken_replies(rows) + "\n", encoding="utf-8")
    payload = {
        "generation": GENERATION,
        "max_new_tokens": max_new_tokens,
        "dataset": dataset,
        "untagged": list(untagged),
        "averages": [asdict(row) | {"break_rate": row.break_rate} for row in averages],
        "results": [asdict(row) | {"break_rate": row.break_rate} for row in rows],
    }
    (out_dir / "characters.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
    return markdown


def evaluate_cards(
    base_model: str,
    adapters: Sequence[tuple[str, str]],
    cards: Sequence[CardUnderTest],
    conversations: Sequence[Conversation],
    *,
    include_base: bool = True,
    include_own: bool = True,
    per_character: int | None = None,
    engine: str = "llamacpp",
    threads: int | None = None,
    max_new_tokens: int = 48,
    max_length: int = 1024,
) -> list[CharacterScores]:
    """Every configuration on every card: base, each named adapter, then each card's own adapter.

    ``engine``: ``llamacpp`` (the GGUF costar serves by default; the only one fast enough on a
    busy CPU) or ``transformers`` (fp32, batched; base_model may then be any model).
    """
    from finetune.modeling import load_tokenizer, resolve_base_model

    model_path = resolve_base_model(base_model)
    tokenizer = load_tokenizer(model_path)
    grouped = conversations_by_card(conversations, cards, per_character)
    choices = choices_by_card(grouped)
    runs: list[tuple[str, str | None, Sequence[CardUnderTest]]] = []
    if include_base:
        runs.append(("base", None, cards))
    runs += [(name, path, cards) for name, path in adapters]
    if include_own:
        for folder in dict.fromkeys(c.own_adapter for c in cards if c.own_adapter is not None):
            runs.append(("own", str(folder), [c for c in cards if c.own_adapter == folder]))
    rows = []
    for config, adapter, members in runs:
        evaluator: Evaluator
        if engine == "llamacpp":
            from finetune.llama_eval import LlamaCppEvaluator

            evaluator = LlamaCppEvaluator(tokenizer, adapter, threads)
        else:
            evaluator = TransformersEvaluator(model_path, tokenizer, adapter)
        try:
            rows += evaluate_characters(
                config, evaluator, tokenizer, members, grouped, choices, max_new_tokens, max_length
            )
        finally:
            evaluator.close()
    return rows
