"""The console (a terminal chat) as a costar platform plug-in: its settings section
(:mod:`bot.console.settings`, ``COSTAR_CONSOLE_*``), its output limits and adapter
(:mod:`bot.console.adapter`), its ``/`` commands (:mod:`bot.console.events`) and its live input line
(:mod:`bot.console.line`). :mod:`bot.console.plugin` declares them to the one registry,
:mod:`bot.platforms`; ``bot.app`` starts the console when asked or when no other platform is configured.
"""
