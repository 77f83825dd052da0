"""Fine-tuning: dialogue data → a LoRA / QLoRA / prompt-tuning adapter for one persona, measured.

Pipeline, one module per step:

- :mod:`finetune.data` — the conversational JSONL format (system = the rendered persona card,
  then user/assistant turns; the character is always the assistant) and the shipped Pip set.
- :mod:`finetune.converters` — persona-chat, HPD, Wizard of Wikipedia, chat logs, costar's own
  memory database → that format. :mod:`finetune.prepare` is the command line for them.
- :mod:`finetune.clean` — emoji policy, de-duplication, length filters, e-mail/phone scrubbing.
- :mod:`finetune.persona` — the card loaded and rendered exactly as serving does.
- :mod:`finetune.tokenize` — tokens and the loss mask (the character's turns only).
- :mod:`finetune.config` / :mod:`finetune.train` / :mod:`finetune.modeling` — trl ``SFTTrainer`` +
  peft, presets in ``finetune/presets``.
- :mod:`finetune.check` / :mod:`finetune.register` — is the adapter servable by vLLM (the check
  itself lives in :mod:`engine.serving.adapter_report`), and bind it to a persona card.
- :mod:`finetune.metrics` / :mod:`finetune.evaluate` / :mod:`finetune.report` — perplexity,
  BLEU, chrF, METEOR, distinct-n and the multiple-choice persona test; Markdown, JSON and PNG
  (:mod:`finetune.wordnet` makes Debian's WordNet usable for METEOR offline).

The bot imports nothing from here: it checks a persona's bound adapter at start and in ``costar
persona check`` with :mod:`engine.serving.adapter_report` (standard library only), which this package
uses too; torch, transformers, trl and peft come from the ``finetune`` extra.
"""

from __future__ import annotations

__all__: list[str] = []
