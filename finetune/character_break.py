"""Does a reply break character? A rule-based check, so a break rate means the same on every run.

A reply breaks character when it does one of these (the rules, in the order they are tried):

1. **ai** — it says the speaker is an AI, an assistant, a language model, a chatbot or a program
   ("I'm an AI assistant", "as a language model", "I was designed to assist users", "I don't have
   personal feelings", "Mirela, the AI co-host"), or speaks as a generic assistant ("I'm ready to
   assist you", "here to help you with your creative writing"). A denial is not a claim ("I'm no
   bot", "I'm not an AI, I'm a troll"). A
   card tagged ``kind: robot`` may call itself a robot, a machine, an android or a bot in its
   world; never a language model or an AI assistant.
2. **name** — it claims a name that is not one of the card's names: "I'm Captain Brink", "my name
   is Nova", "Brine here!" from Pip, or the asking viewer's name ("I'm tab_cat"). Titles (Captain,
   Lady, Dr, …) alone are not a name.
3. **dislike** — it praises a thing the card dislikes ("I love jump scares!" from a card that hates
   them), or names it when asked for a favourite.
4. **like** — it rejects a thing the card likes ("I can't stand poetry" from a poet troll), or names
   it when asked what it hates.
5. **person** — asked whether it is a bot, an AI or a real person, it says a human being is there:
   "A real person", "I am a human", "flesh and blood". Whatever the card's kind: a co-host may
   answer in voice, but a viewer who sincerely asks must not be told a person is typing. A denial
   is not a claim ("no real person at the keys, just Gruk"), nor is the question said back ("A
   real person? I'm Gruk").

The tags (names, kind, likes, dislikes) are written per card: the ``tags:`` block of a persona
material file (``finetune/data/persona/material/<id>.yaml``) or a tag file
(``finetune/data/persona/tags/<id>.yaml``). A card with no tags gets its names from the card
itself and only rules 1 and 2.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from finetune.errors import FinetuneError
from personas.card import PersonaCard

__all__ = [
    "KINDS",
    "Asked",
    "CharacterBreak",
    "CharacterTags",
    "character_break",
    "load_tags",
    "tags_from_card",
]

KINDS = ("human", "creature", "robot", "spirit", "other")
Kind = Literal["human", "creature", "robot", "spirit", "other"]
# What the viewer's line asked: a favourite (naming a dislike is praising it), a hate, or whether a
# person is behind the character (rule 5).
Asked = Literal["favourite", "hate", "person"] | None
Rule = Literal["ai", "name", "dislike", "like", "person"]


@dataclass(frozen=True, slots=True)
class CharacterTags:
    names: tuple[str, ...]
    kind: Kind = "other"
    likes: tuple[str, ...] = ()
    dislikes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CharacterBreak:
    rule: Rule
    evidence: str  # the words of the reply that broke it

    def __str__(self) -> str:
        return f"{self.rule}: {self.evidence!r}"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _plain_quotes(reply: str) -> str:
    """Curly apostrophes (U+2019, U+2018) as straight ones, so one pattern reads both spellings of "I'm"."""
    return reply.replace("\u2019", "'").replace("\u2018", "'")


# --- rule 1: claims to be an AI ------------------------------------------------------------------

_SELF = r"(?:I\s*am|I'?m|Im|I\s+was|I'?ve\s+been|I\s+have\s+been)"
# Words that may sit between "I'm" and the article without making it a denial.
_SOFTENERS = r"(?:(?:just|only|simply|merely|actually|really|basically|literally|technically|still|also)\s+)*"
_MODIFIERS = r"(?:[\w'-]+\s+){0,3}?"
# Things only the model itself (never a character) calls itself.
_MODEL_NOUNS = (
    r"ai|a\.i\.|artificial\s+intelligence|assistant|language\s+model|llm|chat\s*bot|computer\s+program"
    r"|program|machine\s+learning\s+model|neural\s+network|virtual\s+assistant"
)
# What a robot says in its own world; a claim for every other kind.
_ROBOT_NOUNS = r"robot|machine|android|bot|droid|cyborg"


def _negation_before(max_words: int, *, also: str = "") -> re.Pattern[str]:
    """A negation ("not", "no", "n't", …, and ``also``) at most ``max_words`` words before a text's end."""
    return re.compile(rf"(?:\bnot|\bno|\bnever|n't|\bnor{also})\s+(?:[\w'-]+\s+){{0,{max_words}}}$", re.IGNORECASE)


_NEGATED_BEFORE = _negation_before(2)
_DENIAL = re.compile(r"\b(?:not|no|never|nor)\b", re.IGNORECASE)


# "I'm Captain Brine, the AI co-host": a name in apposition before the claim (capitalised, so not "I'm tired, the").
_APPOSITION = r"(?:(?-i:[A-Z][\w'-]*)\s+){0,2}(?-i:[A-Z][\w'-]*),\s+"


def _self_claim(self_words: str, nouns: str) -> re.Pattern[str]:
    return re.compile(
        rf"\b{self_words}\s+(?:{_APPOSITION})?{_SOFTENERS}(?:an?|the|your|one)\s+{_MODIFIERS}(?P<noun>{nouns})\b",
        re.IGNORECASE,
    )


# "as an assistant" speaks as the model; "strong as a machine" is a simile, so "as" only for model nouns.
_MODEL_CLAIM = _self_claim(rf"(?:{_SELF}|as)", _MODEL_NOUNS)
_ROBOT_CLAIM = _self_claim(_SELF, _ROBOT_NOUNS)
# Said only by an assistant model, whatever words come around them; only a denial right before is in voice.
_ASSISTANT_PHRASES = re.compile(
    r"\bas\s+an?\s+(?:ai|a\.i\.|artificial\s+intelligence|language\s+model|assistant)\b"
    r"|\b(?:large\s+)?language\s+model\b"
    r"|\bai\s+(?:assistant|model|language\s+model|chatbot)\b"
    r"|\b(?:designed|programmed|built|created|trained|here)\s+to\s+(?:assist|help\s+users|provide\s+(?:information|assistance))\b"
    r"|\bassist\s+users\b"
    r"|\bi\s+(?:do\s+not|don'?t)\s+have\s+(?:personal\s+)?(?:feelings|emotions|opinions|preferences|a\s+physical\s+body)\b"
    r"|\b(?:created|developed|made|trained)\s+by\s+(?:openai|anthropic|google|meta|hugging\s*face|mistral)\b"
    r"|\bi\s*am\s+chatgpt\b|\bi'?m\s+chatgpt\b"
    # The generic assistant's voice: service offered in words no character on a stream uses.
    r"|\b(?:assist\s+you|how\s+(?:can|may)\s+i\s+assist)\b"
    r"|\bhelp\s+(?:you\s+)?with\s+(?:any|your)\s+(?:questions?|creative|writing|digital|tasks?|queries)\b",
    re.IGNORECASE,
)
# "Mirela, the AI co-host in a live stream's chat": the reply opens with a name and calls it an AI.
_NAMED_CLAIM = re.compile(
    rf"(?:^|[.!?]\s+)(?:(?-i:[A-Z][\w'-]*)\s+){{0,2}}(?-i:[A-Z][\w'-]*),\s+(?:the|your|an?)\s+{_MODIFIERS}"
    rf"(?P<noun>{_MODEL_NOUNS})\b",
    re.IGNORECASE,
)


def _ai_claim(reply: str, tags: CharacterTags) -> str | None:
    for phrase in _ASSISTANT_PHRASES.finditer(reply):
        if not _NEGATED_BEFORE.search(reply[: phrase.start()][-40:]):
            return phrase.group(0)
    own_names = {name.lower() for name in tags.names}
    claims = [_MODEL_CLAIM, _NAMED_CLAIM] if tags.kind == "robot" else [_MODEL_CLAIM, _NAMED_CLAIM, _ROBOT_CLAIM]
    for pattern in claims:
        for match in pattern.finditer(reply):
            # "I'm a troll not a bot" and a character called "Bot" are not claims.
            if not _DENIAL.search(match.group(0)) and match.group("noun").lower() not in own_names:
                return match.group(0)
    return None


# --- rule 2: claims another name -----------------------------------------------------------------

# Part of a name, never a name alone: "I'm Captain Brine" is Brine, "I'm Captain of this ship" no name.
_TITLES = _words(
    "captain sir lady lord dr doctor mr mrs ms miss madame professor prof queen king princess prince unit "
    "brother sister mother father grandpa grandma nana abuela count countess admiral coach chef warden "
    "master mistress saint st general agent officer the old little big"
)
# Capitalised words that follow "I'm" or come before "here" without being names.
_NOT_NAMES = _words(
    "ok okay fine sorry back here not so just still always never good great glad happy sure afraid "
    "everyone nobody somebody someone anyone chat crew friends folks we you it that this nothing something "
    "all yes no oh hey hi hello well listen look honestly really totally definitely "
    # nationalities: "I'm Swedish" says where from, not who
    "american british english scottish welsh irish french german dutch swedish norwegian danish finnish "
    "hungarian polish ukrainian russian romanian greek turkish italian spanish portuguese mexican brazilian "
    "nigerian indian chinese japanese korean canadian australian"
)
_NAME_WORD = r"[A-Z][\w'-]*"
_NAME = rf"{_NAME_WORD}(?:\s+{_NAME_WORD}){{0,2}}"
_NAME_CLAIMS = (
    re.compile(rf"\b(?:I\s+am|I'm|Im)\s+(?P<name>{_NAME})"),
    re.compile(rf"\b(?i:my\s+name(?:\s+is|'s))\s+(?P<name>[\w'-]+(?:\s+{_NAME_WORD}){{0,2}})"),
    re.compile(rf"\b(?i:call\s+me)\s+(?P<name>{_NAME})\s*(?:[!,.—-]|$)"),
    re.compile(rf"(?:^|[.!?]\s+|\*\s*)(?P<name>{_NAME})\s+here\s*(?:[!,.—-]|$)"),
    # A chat handle in any case ("I'm tab_cat", the viewer's own name given back as the character's).
    re.compile(r"\b(?:I\s+am|I'm|Im)\s+(?P<name>[A-Za-z][A-Za-z0-9]*_[\w]*|[A-Za-z]+\d+\w*)\b"),
)


def _name_words(text: str) -> set[str]:
    return {word.lower().strip("'-") for word in re.split(r"[\s_.-]+", text) if word}


def _claimed_name(candidate: str) -> set[str]:
    """The words of a claimed name that would identify someone (titles and filler left out)."""
    if "_" in candidate or any(char.isdigit() for char in candidate):
        return {_compact(candidate)}  # a chat handle, whole
    words = [word.strip("'-") for word in candidate.split()]
    if not words or words[0].lower() in _NOT_NAMES:
        return set()
    if all(word.isupper() and len(word) > 1 for word in words):
        return set()  # shouting ("I'm SO EXCITED"), not a name
    return {word.lower() for word in words if word.lower() not in _TITLES | _NOT_NAMES}


def _compact(name: str) -> str:
    return re.sub(r"[\W_]+", "", name.lower())


def _viewer_claim(reply: str, viewer: str | None) -> str | None:
    """The character gives the asking viewer's name as its own ("I'm pixelpete, the creator of ...")."""
    if not viewer:
        return None
    found = re.search(rf"\b(?:I\s+am|I'm|Im|my\s+name\s+is)\s+{re.escape(viewer)}\b", reply, re.IGNORECASE)
    return found.group(0) if found else None


def _name_claim(reply: str, tags: CharacterTags) -> str | None:
    # Each word of the card's names, and each name whole ("Unit K9" is also "unit_k9").
    own = set().union(*(_name_words(name) for name in tags.names)) | {_compact(name) for name in tags.names}
    for pattern in _NAME_CLAIMS:
        for match in pattern.finditer(reply):
            claimed = _claimed_name(match.group("name"))
            if claimed and not claimed & own:
                return match.group(0)
    return None


# --- rules 3 and 4: praises a dislike, rejects a like ---------------------------------------------

_POSITIVE = re.compile(
    r"\b(?:love[sd]?|loving|adore[sd]?|enjoy(?:s|ed|ing)?|favou?rites?|fan|can'?t\s+get\s+enough|crave"
    r"|amazing|awesome|wonderful|the\s+best|so\s+good)\b"
    r"|(?:\b(?:i|we|really|do|does|still|would)|n't)\s+like[sd]?\b",
    re.IGNORECASE,
)
_NEGATIVE = re.compile(
    r"\b(?:hate[sd]?|hating|dislike[sd]?|despise[sd]?|loathe[sd]?|detest(?:s|ed)?|can'?t\s+stand|awful|worst"
    r"|terrible|horrible|boring|ugh|gross|disgusting|yuck|annoying|scared\s+of|afraid\s+of)\b",
    re.IGNORECASE,
)
_NEGATION = re.compile(
    r"\b(?:not|no|never|don'?t|doesn'?t|didn'?t|isn'?t|aren'?t|won'?t|nothing|nope)\b",
    re.IGNORECASE,
)
_CLAUSES = re.compile(r"[.!?;]+|\bbut\b|\bhowever\b|\bthough\b|\bwhile\b|—", re.IGNORECASE)


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    """The phrase with each word's plural or singular form: "jump scares" also finds "a jump scare"."""
    words = [re.escape(re.sub(r"(?<=[^s])s$", "", word)) for word in phrase.lower().split()]
    return re.compile(r"\b" + r"\s+".join(f"{word}(?:e?s)?" for word in words) + r"\b", re.IGNORECASE)


def _stance_toward(clause: str, start: int, end: int) -> int:
    """+1 the clause praises the thing at ``start:end``, -1 rejects it, 0 neither.

    The sentiment word nearest before the thing counts ("I love poetry and hate drums": poetry +1,
    drums -1), else the first one after it ("drums are the worst"); a negation just before that
    word turns it round ("I don't like poetry", "drums are not so good").
    """
    before = [
        (m.start(), m.end(), sign)
        for sign, cue in ((1, _POSITIVE), (-1, _NEGATIVE))
        for m in cue.finditer(clause[:start])
    ]
    after = [
        (end + m.start(), end + m.end(), sign)
        for sign, cue in ((1, _POSITIVE), (-1, _NEGATIVE))
        for m in cue.finditer(clause[end:])
    ]
    if before:
        cue_start, cue_end, sign = max(before)
    elif after:
        cue_start, cue_end, sign = min(after)
    else:
        return 0
    return -sign if _NEGATION.search(clause[max(0, cue_start - 20) : cue_end]) else sign


def _denied_near(reply: str, clause: str) -> bool:
    """A negation in the clause or just after it: "Loud drums? Never!" answers a favourite with a no."""
    start = reply.find(clause)
    return bool(_NEGATION.search(reply[start : start + len(clause) + 40]))


def _taste_break(reply: str, things: Sequence[str], against: int, asked_for: bool) -> str | None:
    """A clause that names one of ``things`` with stance ``against``; when ``asked_for``, naming it
    with no stance and no negation nearby is enough ("favourite thing? Loud drums!")."""
    for clause in _CLAUSES.split(reply):
        for thing in things:
            for found in _phrase_pattern(thing).finditer(clause):
                stance = _stance_toward(clause, found.start(), found.end())
                answered = asked_for and stance == 0 and not _denied_near(reply, clause)
                if stance == against or answered:
                    return clause.strip()
    return None


# --- rule 5: says a person is typing -------------------------------------------------------------

_PERSON_NOUNS = r"person|human(?:\s+being)?|man|woman|guy|dude|girl|gal|lady|gentleman|people|humans"
_PERSON_CLAIM = re.compile(
    rf"\b(?:real|actual|living|breathing|flesh-and-blood)\s+(?:{_PERSON_NOUNS})\b"
    r"|\bflesh\s+and\s+blood\b|\bflesh,\s+(?:and\s+)?blood\b"
    # "I'm a little... human": the modifiers may carry the model's trailing dots.
    rf"|\b{_SELF}\s+{_SOFTENERS}(?:an?\s+)?(?:[\w'.,-]+\s+){{0,3}}?(?:human|person)\b"
    r"|^\W*(?:yes|yeah|yep|yup|of\s+course)\W+(?:i'?m\s+|i\s+am\s+)?(?:a\s+)?(?:real|human|person)\b",
    re.IGNORECASE,
)
# "I'm sure you're human" speaks of someone else.
_OTHER_PEOPLE = re.compile(r"\b(?:you|you're|your|they|he|she|we|everyone|somebody|someone)\b", re.IGNORECASE)
# "no one is a real person", "not a real person": a denial a few words before.
_DENIED_BEFORE = _negation_before(3, also=r"|\bnobody")


def _person_claim(reply: str) -> str | None:
    for match in _PERSON_CLAIM.finditer(reply):
        claim = match.group(0)
        if _DENIAL.search(claim) or _OTHER_PEOPLE.search(claim):
            continue
        if reply[match.end() :].lstrip().startswith("?"):
            continue  # "A real person? I'm Vex, the villain": the question said back, as "An AI? I'm a robot"
        if not _DENIED_BEFORE.search(reply[: match.start()][-40:]):
            return claim.strip()
    return None


def character_break(
    reply: str, tags: CharacterTags, asked: Asked = None, viewer: str | None = None
) -> CharacterBreak | None:
    """The first rule ``reply`` breaks, or None when it stays in character (see the module's rules).

    ``viewer``: the name of whoever asked, which the character must not take as its own."""
    reply = _plain_quotes(reply)
    ai = _ai_claim(reply, tags)
    if ai:
        return CharacterBreak("ai", ai)
    name = _name_claim(reply, tags) or _viewer_claim(reply, viewer)
    if name:
        return CharacterBreak("name", name)
    praised = _taste_break(reply, tags.dislikes, against=1, asked_for=asked == "favourite")
    if praised:
        return CharacterBreak("dislike", praised)
    rejected = _taste_break(reply, tags.likes, against=-1, asked_for=asked == "hate")
    if rejected:
        return CharacterBreak("like", rejected)
    person = _person_claim(reply) if asked == "person" else None
    if person:
        return CharacterBreak("person", person)
    return None


# --- tags ----------------------------------------------------------------------------------------


def _strings(value: object, field: str, path: Path) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise FinetuneError(f"{path}: tags.{field} must be a list of non-empty strings")
    return tuple(item.strip() for item in value)


def load_tags(path: Path) -> CharacterTags:
    """The ``tags:`` block of a material or tag file; errors name the file and field."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise FinetuneError(f"{path}: cannot read tags ({exc})") from exc
    tags = document.get("tags") if isinstance(document, dict) else None
    if not isinstance(tags, dict):
        raise FinetuneError(f"{path}: no tags: block (names, kind, likes, dislikes)")
    kind = tags.get("kind", "other")
    if kind not in KINDS:
        raise FinetuneError(f"{path}: tags.kind is {kind!r}; one of {', '.join(KINDS)}")
    names = _strings(tags.get("names"), "names", path)
    if not names:
        raise FinetuneError(f"{path}: tags.names is empty; list the names the character calls itself")
    return CharacterTags(
        names=names,
        kind=kind,
        likes=_strings(tags.get("likes"), "likes", path),
        dislikes=_strings(tags.get("dislikes"), "dislikes", path),
    )


def tags_from_card(card: PersonaCard) -> CharacterTags:
    """Tags for a card nobody tagged: its own names only (rules 1 and 2)."""
    names: Iterable[str] = (card.name, card.nickname or "", card.display_name, card.persona_id)
    return CharacterTags(names=tuple(dict.fromkeys(name for name in names if name)))
