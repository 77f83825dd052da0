"""Discord as a costar platform plug-in: its output limits and message delivery
(:mod:`bot.discord.delivery`), its adapter (:mod:`bot.discord.adapter`), its slash commands
(:mod:`bot.discord.commands`) and its events (:mod:`bot.discord.events`, :mod:`bot.discord.stream`).
It is registered in :mod:`bot.platforms`. See docs/discord.md.

``import discord`` inside this package still means the discord.py library: imports are absolute.
"""
