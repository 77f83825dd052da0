"""The console (a terminal chat) as a costar platform plug-in: its output limits and adapter
(:mod:`bot.console.adapter`), its ``/`` commands (:mod:`bot.console.events`) and its live input line
(:mod:`bot.console.line`). It is registered in :mod:`bot.platforms`; ``bot.app`` starts it when asked
or when no other platform is configured.
"""
