"""Discord as a costar platform plug-in: its settings section (:mod:`bot.discord.settings`,
``DISCORD_*`` and the two ``COSTAR_STREAM_DISCORD_*`` variables), its output limits and message
delivery (:mod:`bot.discord.delivery`), its adapter (:mod:`bot.discord.adapter`), its slash commands
(:mod:`bot.discord.commands`) and its events (:mod:`bot.discord.events`, :mod:`bot.discord.stream`).
:mod:`bot.discord.plugin` declares them to the one registry, :mod:`bot.platforms`; engine names no
platform. See docs/discord.md.

``import discord`` inside this package still means the discord.py library: imports are absolute.
"""
