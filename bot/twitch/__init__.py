"""Twitch chat as a costar platform plug-in: its settings section (:mod:`bot.twitch.settings`,
``TWITCH_*``), its output limits (:mod:`bot.twitch.limits`), its adapter (:mod:`bot.twitch.adapter`), its
EventSub stream events (:mod:`bot.twitch.events`, read through :mod:`bot.twitch.eventsub`) and its login
(:mod:`bot.twitch.auth`, ``costar twitch auth``). :mod:`bot.twitch.plugin` declares them to the one
registry, :mod:`bot.platforms`; engine names no platform. See docs/twitch.md.
"""
