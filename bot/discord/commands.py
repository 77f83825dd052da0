"""The slash commands: ``/persona switch|list|show``, ``/memory forget|about|unnote`` and
``/costar mute|unmute``.

``/memory forget``, ``/memory unnote`` and ``/costar mute|unmute`` are the shared commands of
:mod:`bot.commands` (``forgetme``, ``unnote`` and ``costar``, the ones Twitch and the console type),
rendered as slash commands and run through its one dispatch; their answers are private (ephemeral).

``/persona switch`` is guarded by a check (Manage Server or a configured role), not by
``default_permissions``: those cannot be set per subcommand and server admins can override them
(see docs/discord.md), so the check is what actually keeps viewers from switching the character.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal, TypeVar

import discord
from discord import app_commands

from bot.commands import PlatformCommands
from bot.discord.events import DISCORD, ChannelRules, is_moderator
from engine.errors import PersonaNotFound
from engine.events import ChatEvent, Role
from engine.manager import AboutUser, ConversationManager

__all__ = ["build_command_groups", "report_command_error"]

log = logging.getLogger(__name__)

_MAX_CHOICES = 25  # Discord shows at most 25 autocomplete choices
_EPHEMERAL_LIMIT = 2000
_T = TypeVar("_T")


class NotAModerator(app_commands.CheckFailure):
    """The member may not switch personas."""


def _persona_choices(manager: ConversationManager) -> list[app_commands.Choice[str]]:
    """Installed personas as (display name, id) pairs, sorted by id."""
    return [
        app_commands.Choice(name=card.name, value=persona_id)
        for persona_id, card in sorted(manager.personas.cards.items())
    ]


def _describe_memory(about: AboutUser, *, whom: str = "you") -> str:
    if about.record is None:
        return f"I don't remember anything about {whom}."
    record = about.record
    lines = [
        f"I know {whom} as **{record.display_name}**: {record.message_count} messages"
        f" since {record.first_seen:%Y-%m-%d}."
    ]
    # Numbered so a moderator can delete one with /memory unnote.
    lines += [f"• `#{note.id}` {discord.utils.escape_markdown(note.text)}" for note in about.notes]
    return "\n".join(lines)


def _require_moderator(rules: ChannelRules) -> Callable[[_T], _T]:
    def predicate(interaction: discord.Interaction) -> bool:
        if is_moderator(interaction.user, interaction.permissions, rules):
            return True
        raise NotAModerator("only moderators can do that")

    return app_commands.check(predicate)


def _asker(interaction: discord.Interaction, rules: ChannelRules) -> ChatEvent:
    """The member running a slash command, as the shared commands see a chat line."""
    moderates = is_moderator(interaction.user, interaction.permissions, rules)
    return ChatEvent(
        platform=DISCORD,
        channel_id=str(interaction.channel_id),
        author_id=str(interaction.user.id),
        author_name=interaction.user.display_name,
        text="",
        roles=frozenset({Role.ADMIN}) if moderates else frozenset(),
        server_id=str(interaction.guild_id) if interaction.guild_id else None,
    )


def _clip(text: str, limit: int = _EPHEMERAL_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def report_command_error(interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
    """The tree's error handler: a short private answer, never a traceback in the channel."""
    if isinstance(error, NotAModerator):
        text = "Only members with Manage Server (or a moderator role) can do that."
    elif isinstance(error, app_commands.CheckFailure):
        text = "You can't use this command here."
    else:
        log.error("slash command %s failed", interaction.command and interaction.command.qualified_name, exc_info=error)
        text = "Sorry, that didn't work. Try again in a moment."
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True)
    else:
        await interaction.response.send_message(text, ephemeral=True)


def _persona_group(manager: ConversationManager, rules: ChannelRules) -> app_commands.Group:
    group = app_commands.Group(name="persona", description="Who the co-host is in this channel", guild_only=True)

    @group.command(name="switch", description="Switch the character for this channel (or the whole server)")
    @app_commands.describe(name="an installed persona", scope="this channel only (default) or the whole server")
    @_require_moderator(rules)
    async def switch(
        interaction: discord.Interaction, name: str, scope: Literal["channel", "server"] = "channel"
    ) -> None:
        scope_id = interaction.channel_id if scope == "channel" else interaction.guild_id
        try:
            card = await manager.switch_persona(
                DISCORD, str(scope_id), name, scope=scope, set_by=str(interaction.user.id)
            )
        except PersonaNotFound as exc:
            available = ", ".join(exc.available) or "none installed"
            await interaction.response.send_message(
                f"No persona called {name!r}. Installed: {available}.", ephemeral=True
            )
            return
        where = "this channel" if scope == "channel" else "this server"
        await interaction.response.send_message(f"**{card.display_name}** is now the co-host in {where}.")

    @switch.autocomplete("name")
    async def complete_name(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        wanted = current.lower()
        matches = [
            choice for choice in _persona_choices(manager) if wanted in choice.name.lower() or wanted in choice.value
        ]
        return matches[:_MAX_CHOICES]

    @group.command(name="list", description="The installed personas")
    async def list_personas(interaction: discord.Interaction) -> None:
        current = await manager.persona_for(DISCORD, str(interaction.channel_id), str(interaction.guild_id))
        lines = [
            f"• **{choice.name}** (`{choice.value}`){'  ← here' if choice.value == current.persona_id else ''}"
            for choice in _persona_choices(manager)
        ]
        await interaction.response.send_message(_clip("\n".join(lines) or "No personas installed."), ephemeral=True)

    @group.command(name="show", description="Who the co-host is in this channel")
    async def show(interaction: discord.Interaction) -> None:
        card = await manager.persona_for(DISCORD, str(interaction.channel_id), str(interaction.guild_id))
        about = card.description or card.personality or "(no description)"
        await interaction.response.send_message(_clip(f"**{card.display_name}**\n{about}"), ephemeral=True)

    return group


def _memory_group(manager: ConversationManager, rules: ChannelRules, commands: PlatformCommands) -> app_commands.Group:
    group = app_commands.Group(name="memory", description="What the co-host remembers about you")

    @group.command(name="forget", description="Delete everything the co-host stored about you, on every server")
    async def forget(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        result = await commands.invoke("forgetme", _asker(interaction, rules))
        await interaction.followup.send(result.reply or "Done.", ephemeral=True)

    @group.command(name="about", description="What the co-host remembers about you (only you see this)")
    @app_commands.describe(viewer="moderators: someone else")
    async def about(interaction: discord.Interaction, viewer: discord.User | None = None) -> None:
        whom = viewer or interaction.user
        if whom.id != interaction.user.id and not is_moderator(interaction.user, interaction.permissions, rules):
            await interaction.response.send_message(
                "Only moderators can look at someone else's memory.", ephemeral=True
            )
            return
        # A moderator sees only what was said within this server: never a DM, never another server.
        asked_in = (str(interaction.channel_id), str(interaction.guild_id) if interaction.guild_id else None)
        moderator_in = asked_in if whom.id != interaction.user.id else None
        about = await manager.about(DISCORD, str(whom.id), moderator_in=moderator_in)
        text = _describe_memory(about, whom="you" if whom.id == interaction.user.id else whom.mention)
        await interaction.response.send_message(_clip(text), ephemeral=True)

    @group.command(name="unnote", description="Delete one thing the co-host remembers (see /memory about)")
    @app_commands.describe(note="the note's number, as /memory about shows it")
    @_require_moderator(rules)
    async def unnote(interaction: discord.Interaction, note: int) -> None:
        result = await commands.invoke("unnote", _asker(interaction, rules), str(note))
        await interaction.response.send_message(result.reply or "Nothing to do.", ephemeral=True)

    return group


def _costar_group(rules: ChannelRules, commands: PlatformCommands) -> app_commands.Group:
    """The dashboard's mute button for this channel, for moderators: no cooldown, it must always work."""
    group = app_commands.Group(name="costar", description="Silence the co-host in this channel", guild_only=True)

    @group.command(name="mute", description="Stop the co-host talking in this channel at once")
    @_require_moderator(rules)
    async def mute(interaction: discord.Interaction) -> None:
        await commands.invoke("costar", _asker(interaction, rules), "mute")
        await interaction.response.send_message("Muted in this channel until `/costar unmute`.", ephemeral=True)

    @group.command(name="unmute", description="Let the co-host talk in this channel again")
    @_require_moderator(rules)
    async def unmute(interaction: discord.Interaction) -> None:
        result = await commands.invoke("costar", _asker(interaction, rules), "unmute")
        await interaction.response.send_message(result.reply or "Unmuted: talking again.", ephemeral=True)

    return group


def build_command_groups(
    manager: ConversationManager, rules: ChannelRules, commands: PlatformCommands
) -> list[app_commands.Group]:
    return [_persona_group(manager, rules), _memory_group(manager, rules, commands), _costar_group(rules, commands)]
