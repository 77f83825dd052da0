"""Moderation in both directions: what viewers write, and what the character is about to say.

The manager asks :meth:`Moderator.check_input` once per chat line at ingest (the line is stored
either way; a blocked line is not answered) and :meth:`Moderator.check_output` on every reply
(and, without counting, on every streamed snapshot). Rules and their actions are in
:mod:`personas.moderation_rules`; the settings are ``COSTAR_MODERATION_*`` with per-persona (card
field ``moderation``) and per-channel (``COSTAR_MODERATION_CHANNELS``) overrides.

Every action is counted in :attr:`Moderator.counts`, keyed ``(reason, action)`` — e.g.
``("output_prompt_leak", "regenerate")`` — and logged with its reason and a safe detail: never
the hidden instructions, never a slur.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from engine.base.clock import Clock, MonotonicClock
from engine.base.recent import DEFAULT_CAPACITY, RecentlyUsed
from engine.base.repeats import RepeatWindow, Seen
from engine.events import ChatEvent, Finding, Verdict
from engine.moderation.checks import (
    WordList,
    caps_shouting,
    defuse_mentions,
    domain_allowed,
    find_links,
    is_slur,
    mass_mention,
    remove_links,
    repeated,
    slur_in,
    slur_inside_name,
    starts_with_command,
    strip_command_prefix,
    warm_link_rules,
)
from engine.moderation.normalize import (
    matching_words,
    normalise_text,
    normalize_for_matching,
    squash,
    word_sequence_cache,
)
from engine.moderation.prompt_leaks import LeakDetector, hidden_instructions
from engine.settings import ModerationSettings
from personas.card import PersonaCard
from personas.moderation_rules import DEFAULT_ACTIONS, Action, ModerationOverrides, Reason

__all__ = ["Moderator", "Policy", "repeat_fingerprint"]

log = logging.getLogger(__name__)

# Recent lines remembered per channel for the repeat count: every line is counted (a chatter's own
# repeat of "hi" is a duplicate), so under a flood this, not the window, bounds what is held.
_REPEAT_MEMORY = 1000


@dataclass(frozen=True)
class Policy:
    """Global settings merged with the persona's and then the channel's overrides."""

    enabled: bool
    banned_words: WordList
    banned_patterns: tuple[re.Pattern[str], ...]
    allowed_domains: tuple[str, ...]
    actions: dict[Reason, Action]
    safe_line: str

    @classmethod
    def merge(cls, settings: ModerationSettings, *layers: ModerationOverrides | None) -> Policy:
        enabled, safe_line = settings.enabled, settings.safe_line
        words, patterns, domains = (
            list(settings.banned_words),
            list(settings.banned_patterns),
            list(settings.allowed_domains),
        )
        actions = {**DEFAULT_ACTIONS, **{Reason(k): Action(v) for k, v in settings.actions.items()}}
        for layer in (layer for layer in layers if layer is not None):
            enabled = layer.enabled if layer.enabled is not None else enabled
            safe_line = layer.safe_line or safe_line
            words += layer.banned_words
            patterns += layer.banned_patterns
            domains += layer.allowed_domains
            actions.update({Reason(k): Action(v) for k, v in layer.actions.items()})
        return cls(
            enabled,
            WordList(words),
            tuple(re.compile(p, re.IGNORECASE) for p in patterns),
            tuple(domains),
            actions,
            safe_line,
        )


def repeat_fingerprint(text: str, *, min_chars: int) -> str:
    """What makes two chat lines the same line.

    A line long enough for the copypasta rule is its letters and digits, so spacing and
    punctuation tricks do not make a pasted line new. A shorter one is its normalised text, emoji
    kept: "Pip, 😂" and "Pip, 🎉" are different lines, not the same "pip".
    """
    squashed = squash(text)
    return squashed if len(squashed) >= min_chars else normalise_text(text)


class Moderator:
    def __init__(
        self, settings: ModerationSettings, *, clock: Clock | None = None, channels_kept: int = DEFAULT_CAPACITY
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or MonotonicClock()
        self.counts: Counter[tuple[str, str]] = Counter()
        warm_link_rules()  # the public suffix list is read once, here, not on the first chat line
        # Merged per persona and channel; rebuilt cheaply for a channel that was forgotten.
        self._policies: RecentlyUsed[tuple[str, str], Policy] = RecentlyUsed(channels_kept)
        self._leak_detectors: dict[str, LeakDetector] = {}
        # The one repeat count: copies of each line's fingerprint per channel, within the window.
        self._repeats = RepeatWindow(
            settings.copypasta_window_s, max_lines=_REPEAT_MEMORY, keep_edge=True, channels_kept=channels_kept
        )

    def policy(self, persona: PersonaCard, channel_key: str) -> Policy:
        key = (persona.persona_id, channel_key)
        policy = self._policies.get(key)
        if policy is None:
            channel = self.settings.channels.get(channel_key)
            policy = self._policies[key] = Policy.merge(self.settings, persona.moderation, channel)
        return policy

    def channel_state(self) -> dict[str, int]:
        """Entries held per channel-keyed table (tests and benchmarks watch them stay bounded)."""
        return {"moderation_policies": len(self._policies), "copypasta_channels": self._repeats.channels}

    @staticmethod
    def cache_fill() -> dict[str, tuple[int, int]]:
        """(entries, capacity) of each bounded text cache: memory grows until they are full."""
        caches = {
            "normalized_lines": normalize_for_matching,
            "line_words": word_sequence_cache(),
            "matching_words": matching_words,
            "slur_verdicts": is_slur,
        }
        return {name: (cache.cache_info().currsize, cache.cache_info().maxsize or 0) for name, cache in caches.items()}

    def leak_detector(self, persona: PersonaCard) -> LeakDetector:
        if persona.persona_id not in self._leak_detectors:
            self._leak_detectors[persona.persona_id] = LeakDetector(
                hidden_instructions(persona), words=self.settings.leak_words, chars=self.settings.leak_chars
            )
        return self._leak_detectors[persona.persona_id]

    # -- input ------------------------------------------------------------------------------

    def check_input(self, event: ChatEvent, persona: PersonaCard, *, repeats: Seen | None = None) -> Verdict:
        """Once per chat line: may the character answer it?

        ``repeats`` is what :meth:`count_repeats` said when the line arrived; without it the line
        is counted now (the copypasta rule remembers lines, so count each line once).
        """
        policy = self.policy(persona, event.channel_key)
        if repeats is None:
            repeats = self.count_repeats(event)
        if not policy.enabled or (self.settings.exempt_moderators and event.is_moderator):
            return Verdict(Action.ALLOW, event.text)
        found = self._input_findings(event.text, policy)
        if repeats.copies >= self.settings.copypasta_count and self._long_enough_for_copypasta(event.text):
            found.append((Reason.INPUT_COPYPASTA, f"{repeats.copies} times"))
        verdict = _decide(found, policy, event.text, fixes={})
        self._record(verdict, event)
        return verdict

    def harmful_text(self, text: str, persona: PersonaCard, channel_key: str) -> bool:
        """Whether a viewer's line breaks a content rule (slur, banned word or pattern, a link not
        allowed) whose input action keeps the character from answering it.

        Such lines are kept out of the model's view of history too. Nothing is counted or logged;
        spam signals (shouting, repeats, copypasta) are no reason to hide a line.
        """
        policy = self.policy(persona, channel_key)
        if not policy.enabled:
            return False
        silenced = (Action.DROP, Action.REPLACE)
        return any(policy.actions[reason] in silenced for reason, _ in self._content_findings(text, policy))

    def harmful_name(self, name: str, persona: PersonaCard, channel_key: str) -> bool:
        """:meth:`harmful_text` for a user name the character might read out (a raider, a gifter):
        a slur glued inside the name counts too."""
        if self.harmful_text(name, persona, channel_key):
            return True
        policy = self.policy(persona, channel_key)
        return (
            policy.enabled
            and policy.actions[Reason.INPUT_SLUR] in (Action.DROP, Action.REPLACE)
            and (slur_inside_name(name))
        )

    def _content_findings(self, text: str, policy: Policy) -> list[tuple[Reason, str]]:
        found = self._word_findings(
            text, policy, Reason.INPUT_SLUR, Reason.INPUT_BANNED_WORD, Reason.INPUT_BANNED_PATTERN
        )
        hosts = [host for host in find_links(text) if not domain_allowed(host, policy.allowed_domains)]
        if hosts:
            found.append((Reason.INPUT_LINK, ", ".join(sorted(set(hosts)))))
        return found

    def _input_findings(self, text: str, policy: Policy) -> list[tuple[Reason, str]]:
        s = self.settings
        found = self._content_findings(text, policy)
        if caps_shouting(text, min_letters=s.caps_min_letters, ratio=s.caps_ratio):
            found.append((Reason.INPUT_CAPS, ""))
        if repeated(text, max_chars=s.repeat_chars, max_words=s.repeat_words):
            found.append((Reason.INPUT_REPEAT, ""))
        return found

    def count_repeats(self, event: ChatEvent) -> Seen:
        """Count a line once, as it arrives: how often its text was seen in the channel's window,
        by how many chatters, and by its own author (the one count; see :mod:`engine.base.repeats`)."""
        fingerprint = repeat_fingerprint(event.text, min_chars=self.settings.copypasta_min_chars)
        return self._repeats.see(event.channel_key, fingerprint, self.clock.now(), event.author_id)

    def _long_enough_for_copypasta(self, text: str) -> bool:
        # A short line many chatters type on their own ("hi", "F") is no copypasta to block.
        return len(squash(text)) >= self.settings.copypasta_min_chars

    # -- output -----------------------------------------------------------------------------

    def check_output(
        self, text: str, persona: PersonaCard, event: ChatEvent, *, final: bool = True, may_regenerate: bool = True
    ) -> Verdict:
        """What may be said instead of ``text``. ``final=False`` (stream snapshots) neither counts nor logs."""
        policy = self.policy(persona, event.channel_key)
        if not policy.enabled or not text:
            return Verdict(Action.ALLOW, text)
        found = self._word_findings(
            text, policy, Reason.OUTPUT_SLUR, Reason.OUTPUT_BANNED_WORD, Reason.OUTPUT_BANNED_PATTERN
        )
        hosts = [host for host in find_links(text) if not domain_allowed(host, policy.allowed_domains)]
        if hosts:
            found.append((Reason.OUTPUT_LINK, ", ".join(sorted(set(hosts)))))
        if mass_mention(text, max_mentions=self.settings.max_mentions):
            found.append((Reason.OUTPUT_MASS_MENTION, ""))
        if event.platform in self.settings.command_prefix_platforms and starts_with_command(text):
            found.append((Reason.OUTPUT_COMMAND_PREFIX, event.platform))
        leak = self.leak_detector(persona).leak_form(text)
        if leak:
            found.append((Reason.OUTPUT_PROMPT_LEAK, f"{leak} overlap with the hidden instructions"))
        fixes = {
            Reason.OUTPUT_LINK: lambda value: remove_links(value, policy.allowed_domains),
            Reason.OUTPUT_MASS_MENTION: defuse_mentions,
            Reason.OUTPUT_COMMAND_PREFIX: strip_command_prefix,
        }
        verdict = _decide(found, policy, text, fixes=fixes, may_regenerate=may_regenerate)
        if final:
            self._record(verdict, event)
        return verdict

    # -- shared -----------------------------------------------------------------------------

    @staticmethod
    def _word_findings(
        text: str, policy: Policy, slur: Reason, word: Reason, pattern: Reason
    ) -> list[tuple[Reason, str]]:
        found: list[tuple[Reason, str]] = []
        if slur_in(text):
            found.append((slur, "slur list"))  # the word itself is never logged
        phrase = policy.banned_words.first_match(text)
        if phrase:
            found.append((word, phrase))
        normal = normalize_for_matching(text)
        for index, compiled in enumerate(policy.banned_patterns):
            if compiled.search(text) or compiled.search(normal):
                found.append((pattern, f"pattern #{index + 1}"))
                break
        return found

    def _record(self, verdict: Verdict, event: ChatEvent) -> None:
        for finding in verdict.findings:
            self.counts[(finding.reason.value, finding.action.value)] += 1
            log.info(
                "moderation: %s -> %s on %s message %s%s",
                finding.reason.value,
                finding.action.value,
                event.channel_key,
                event.message_id,
                f" ({finding.detail})" if finding.detail else "",
            )


def _decide(
    found: list[tuple[Reason, str]],
    policy: Policy,
    text: str,
    *,
    fixes: dict[Reason, Callable[[str], str]],
    may_regenerate: bool = True,
) -> Verdict:
    findings = []
    for reason, detail in found:
        action = policy.actions[reason]
        if action is Action.REGENERATE and not may_regenerate:
            action = Action.DROP  # a second bad reply is not retried again
        findings.append(Finding(reason, action, detail))
    if not findings:
        return Verdict(Action.ALLOW, text)
    strictest = max((finding.action for finding in findings), key=lambda action: action.severity)
    if strictest is Action.REPLACE:
        return Verdict(strictest, policy.safe_line, tuple(findings))
    if strictest in (Action.DROP, Action.REGENERATE):
        return Verdict(strictest, "", tuple(findings))
    for finding in findings:
        if finding.action is Action.FIX:
            text = fixes[finding.reason](text)
    return Verdict(strictest if text.strip() else Action.DROP, text.strip(), tuple(findings))
