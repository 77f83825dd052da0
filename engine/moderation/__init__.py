"""Moderation: what viewers write and what the character is about to say.

Owns the text normaliser used for *matching* (``normalize``), the detectors (``checks``),
prompt-leak detection (``prompt_leaks``) and the
:class:`~engine.moderation.moderator.Moderator` that combines them into a verdict. The rule and
override types a persona card can carry live in :mod:`personas.moderation_rules`.
"""
