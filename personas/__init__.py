"""Persona cards: our YAML format, SillyTavern V2/V3 import, lorebooks, and the registry."""

from __future__ import annotations

from personas.card import Attributes, Lorebook, LoreEntry, ModelBinding, PersonaCard, Style
from personas.errors import PersonaError

__all__ = ["Attributes", "LoreEntry", "Lorebook", "ModelBinding", "PersonaCard", "PersonaError", "Style"]
