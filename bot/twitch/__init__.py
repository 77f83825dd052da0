"""Twitch chat as a costar platform plug-in: its output limits (:mod:`bot.twitch.limits`), its adapter
(:mod:`bot.twitch.adapter`), its EventSub stream events (:mod:`bot.twitch.events`, read through
:mod:`bot.twitch.eventsub`) and its login (:mod:`bot.twitch.auth`, ``costar twitch auth``). It is
registered in :mod:`bot.platforms`. See docs/twitch.md.
"""
