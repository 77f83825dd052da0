"""YouTube Live chat as a costar platform plug-in.

The package owns everything YouTube: its settings section (:mod:`bot.youtube.settings`), its output
limits and adapter (:mod:`bot.youtube.adapter`), its quota plan (:mod:`bot.youtube.quota`), its login
(:mod:`bot.youtube.auth`, ``costar youtube auth``) and its message shapes (:mod:`bot.youtube.messages`).
It registers itself in :mod:`bot.platforms`; engine names no platform and imports nothing from here
(``tests/test_youtube.py`` checks it with the AST). See docs/youtube.md.
"""

from bot.youtube.messages import PLATFORM

__all__ = ["PLATFORM"]
