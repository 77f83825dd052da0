"""The base room: small helpers every other room of the engine may use, and which use none of them.

- ``clock``: the one time convention (monotonic seconds as a float), real and manual;
- ``recent``: the bounded least-recently-used table every per-channel table keeps;
- ``cooldown``: the one cooldown helper, keyed by user, channel or anything;
- ``repeats``: the one windowed repeat counter (copies of a line, by how many chatters).

It imports nothing from the engine but :mod:`engine.events` and :mod:`engine.errors`
(``tests/test_architecture.py`` keeps the engine's rooms in order).
"""
