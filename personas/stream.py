"""The stream part of a persona card: ``reactions:`` to stream events, custom ``commands:`` and
``timers:``.

A reaction, command or timer either says a fixed ``template`` (with ``{fields}`` filled in) or asks
the model with a ``prompt`` hint, so the thanks come in the character's own voice. Templates are
checked when the card loads: a field the kind does not have is an error naming it, not a crash
mid-stream.

    reactions:
      raid: {template: "Welcome raiders from {from_channel}! {viewers} of you!", cooldown_s: 30}
      gift_bomb: {prompt: "Thank {user} for gifting {count} subs, in one short excited line."}
      answer_rewards: ["Ask Pip a question"]
    commands:
      - {name: lurk, template: "Enjoy the lurk, {user}!", user_cooldown_s: 60}
      - {name: so, level: moderator, prompt: "Give {args} a warm shout-out."}
    timers:
      - {name: discord, template: "Our Discord: see the panel below the stream.", every_min: 20, min_lines: 10}
"""

from __future__ import annotations

import string
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "COMMAND_FIELDS",
    "REACTION_FIELDS",
    "CustomCommand",
    "Reaction",
    "Reactions",
    "StreamTimer",
    "UserLevel",
    "template_fields",
]

# Every field a reaction template may use; fields a kind lacks are filled with neutral words.
REACTION_FIELDS = frozenset(
    {
        "user", "from_channel", "viewers", "bits", "months", "count", "names", "reward", "message", "recipient",
        "tier", "detail",
    }
)  # fmt: skip
COMMAND_FIELDS = frozenset({"user", "args"})
UserLevel = Literal["everyone", "subscriber", "vip", "moderator", "broadcaster"]


def template_fields(template: str) -> set[str]:
    """The ``{field}`` names in a template; raises ValueError for a malformed one.

    A field is filled as written: no format spec or conversion. ``{user:>999999999}`` would pad a
    name to a gigabyte in the middle of a stream, and nothing a chat line needs takes one.
    """
    names = set()
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if spec or conversion:
            written = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            raise ValueError(f"{{{written}}} has a format spec or conversion; fields take none: write {{{name}}}")
        names.add(name)
    return names


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Spoken(_Strict):
    """Says ``template`` (fields filled in) or what the model makes of ``prompt``; exactly one."""

    template: str | None = None
    prompt: str | None = None

    allowed_fields: ClassVar[frozenset[str]] = REACTION_FIELDS

    @model_validator(mode="after")
    def _one_way_to_speak(self) -> _Spoken:
        if (self.template is None) == (self.prompt is None):
            raise ValueError("needs exactly one of 'template' or 'prompt'")
        for text in (self.template, self.prompt):
            unknown = template_fields(text or "") - self.allowed_fields
            if unknown:
                raise ValueError(
                    f"unknown field {{{sorted(unknown)[0]}}}; known: {', '.join(sorted(self.allowed_fields))}"
                )
        return self


class Reaction(_Spoken):
    cooldown_s: float = Field(0.0, ge=0, description="at most one reaction of this kind per channel this often")


def _say(template: str, cooldown_s: float = 0.0) -> Reaction:
    return Reaction(template=template, cooldown_s=cooldown_s)


class Reactions(_Strict):
    """Per event kind, what the character says; ``null`` means say nothing for that kind.

    The defaults thank like a chat bot would; a card replaces any of them.
    """

    follow: Reaction | None = Field(default_factory=lambda: _say("Welcome to the crew, {names}!", 60))
    sub: Reaction | None = Field(default_factory=lambda: _say("Thank you for subscribing, {user}!"))
    resub: Reaction | None = Field(default_factory=lambda: _say("{months} months! Thank you, {user}!"))
    gift: Reaction | None = Field(default_factory=lambda: _say("Thank you for the gift sub, {user}!"))
    gift_bomb: Reaction | None = Field(default_factory=lambda: _say("{user} just gifted {count} subs! Thank you!"))
    raid: Reaction | None = Field(
        default_factory=lambda: _say("Welcome raiders from {from_channel}! {viewers} of you!")
    )
    cheer: Reaction | None = Field(default_factory=lambda: _say("Thank you for the {bits} bits, {user}!"))
    redemption: Reaction | None = None
    online: Reaction | None = None
    offline: Reaction | None = None
    join: Reaction | None = Field(default_factory=lambda: _say("Welcome to the server, {user}!"))
    # Twitch's other chat notices: stored as event lines, said only when the card gives a reaction.
    pay_it_forward: Reaction | None = None
    gift_paid_upgrade: Reaction | None = None
    prime_paid_upgrade: Reaction | None = None
    announcement: Reaction | None = None
    bits_badge_tier: Reaction | None = None
    charity_donation: Reaction | None = None
    watch_streak: Reaction | None = None
    shared_chat_sub: Reaction | None = None
    shared_chat_raid: Reaction | None = None
    paid_message: Reaction | None = Field(default_factory=lambda: _say("Thank you for the {detail}, {user}!"))
    min_bits: int = Field(1, ge=1, description="cheers below this are stored but not thanked")
    answer_rewards: list[str] = Field(
        default_factory=list, description="channel-point rewards whose text the character answers, with priority"
    )
    proactive: str | None = Field(
        None, description="prompt hint for talk when chat is quiet; None uses the built-in one"
    )

    def for_kind(self, kind: str) -> Reaction | None:
        reaction = getattr(self, kind, None)
        return reaction if isinstance(reaction, Reaction) else None

    def answers_reward(self, title: str | None) -> bool:
        return title is not None and title.casefold() in {name.casefold() for name in self.answer_rewards}


class CustomCommand(_Spoken):
    name: str = Field(min_length=1, max_length=40, description="without the '!'")
    level: UserLevel = "everyone"
    user_cooldown_s: float = Field(30.0, ge=0)
    global_cooldown_s: float = Field(5.0, ge=0)

    allowed_fields: ClassVar[frozenset[str]] = COMMAND_FIELDS

    @field_validator("name")
    @classmethod
    def _bare_name(cls, name: str) -> str:
        name = name.removeprefix("!").casefold()
        if not name or any(ch.isspace() for ch in name):
            raise ValueError("a command name is one word, e.g. 'lurk'")
        return name


class StreamTimer(_Spoken):
    """Said every ``every_min`` minutes, but only after ``min_lines`` chat lines since the last time
    (Nightbot's rule: a timer never talks into an empty chat)."""

    name: str = Field(min_length=1, max_length=40)
    every_min: float = Field(15.0, gt=0)
    min_lines: int = Field(5, ge=1)

    allowed_fields: ClassVar[frozenset[str]] = COMMAND_FIELDS
