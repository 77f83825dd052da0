"""From a ``discord.Message`` to an ``engine.events.ChatEvent``: who spoke, where, and to whom."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import discord

from bot.discord.settings import DISCORD, discord_settings
from engine.events import ChatEvent, Role
from engine.settings import Settings

__all__ = ["DISCORD", "ChannelRules", "is_moderator", "to_chat_event"]


@dataclass(frozen=True, slots=True)
class ChannelRules:
    """Where the bot listens, what addresses it, and who counts as a moderator."""

    answer_dms: bool = False
    trigger_words: tuple[str, ...] = ()
    allowed_channels: frozenset[int] = frozenset()
    denied_channels: frozenset[int] = frozenset()
    private_channels: frozenset[int] = frozenset()
    moderator_roles: frozenset[str] = frozenset()  # role names (lower case) or ids

    @classmethod
    def from_settings(cls, settings: Settings) -> ChannelRules:
        own = discord_settings(settings)
        words = [*own.trigger_words, *([settings.core.bot_name] if settings.core.bot_name else [])]
        return cls(
            answer_dms=own.answer_dms,
            trigger_words=tuple(word.lower() for word in words if word.strip()),
            allowed_channels=frozenset(own.allowed_channels),
            denied_channels=frozenset(own.denied_channels),
            private_channels=frozenset(own.private_channels),
            moderator_roles=frozenset(role.strip().lower() for role in own.moderator_roles),
        )

    def listens_in(self, channel: discord.abc.Messageable | None) -> bool:
        """Denied (or not allowed) channels are ignored entirely: nothing there is stored or answered."""
        if isinstance(channel, discord.DMChannel | discord.GroupChannel):
            return self.answer_dms
        channel_ids = _channel_and_parent(channel)
        if channel_ids & self.denied_channels:
            return False
        return not self.allowed_channels or bool(channel_ids & self.allowed_channels)

    def is_private(self, channel: discord.abc.Messageable | None) -> bool:
        """A DM, or a channel the streamer marked private (a thread inherits it): never on stream."""
        if isinstance(channel, discord.DMChannel | discord.GroupChannel):
            return True
        return bool(_channel_and_parent(channel) & self.private_channels)

    def mentions_trigger(self, text: str, extra_words: Iterable[str] = ()) -> bool:
        lowered = text.lower()
        words = {*self.trigger_words, *(word.lower() for word in extra_words if word.strip())}
        return any(re.search(rf"(?<!\w){re.escape(word)}(?!\w)", lowered) for word in words)


def _channel_and_parent(channel: object) -> frozenset[int]:
    # A thread obeys its parent channel's rules too.
    ids = {getattr(channel, "id", None), getattr(channel, "parent_id", None)}
    return frozenset(channel_id for channel_id in ids if channel_id is not None)


def is_moderator(member: discord.abc.User, permissions: discord.Permissions | None, rules: ChannelRules) -> bool:
    """Manage Server, or one of the configured roles (by name or id)."""
    if permissions is not None and (permissions.manage_guild or permissions.administrator):
        return True
    roles = getattr(member, "roles", [])
    return any(role.name.lower() in rules.moderator_roles or str(role.id) in rules.moderator_roles for role in roles)


def _addresses_bot(
    message: discord.Message, bot_user: discord.ClientUser, rules: ChannelRules, character_names: Iterable[str]
) -> bool:
    if message.guild is None:
        return rules.answer_dms
    if bot_user in message.mentions:
        return True
    reference = message.reference
    if (
        reference is not None
        and isinstance(reference.resolved, discord.Message)
        and reference.resolved.author.id == bot_user.id
    ):
        return True
    return rules.mentions_trigger(message.content, character_names)


def to_chat_event(
    message: discord.Message, bot_user: discord.ClientUser, rules: ChannelRules, character_names: Iterable[str] = ()
) -> ChatEvent:
    """``character_names``: the channel's persona's names, which address the bot like trigger words."""
    author = message.author
    permissions = author.guild_permissions if isinstance(author, discord.Member) else None
    roles = frozenset({Role.ADMIN}) if is_moderator(author, permissions, rules) else frozenset()
    return ChatEvent(
        platform=DISCORD,
        channel_id=str(message.channel.id),
        author_id=str(author.id),
        author_name=author.display_name,
        # clean_content turns <@123> into @name, which is what a reader (and the model) should see.
        text=message.clean_content,
        message_id=str(message.id),
        roles=roles,
        sent_at=message.created_at,
        reply_to_id=str(message.reference.message_id) if message.reference and message.reference.message_id else None,
        addresses_bot=not author.bot and _addresses_bot(message, bot_user, rules, character_names),
        server_id=str(message.guild.id) if message.guild else None,
        private=message.guild is None or rules.is_private(message.channel),
    )
