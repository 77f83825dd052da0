"""The card sections about the character on the stream itself: ``overlay:`` (how its captions
look) and ``voice:`` (whether and how it speaks).

A leaf module like :mod:`personas.moderation_rules`: the engine reads these types, the card
carries them, nothing here imports the engine.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["OverlayStyle", "VoiceSection"]

# Colours reach a CSS property in the overlay page: only plain colour syntax may pass.
_COLOUR = re.compile(r"^(#[0-9a-fA-F]{3,8}|[a-zA-Z]{3,20}|rgba?\([0-9., %]{5,40}\))$")
_FONT = re.compile(r"^[\w \-,'\"]{1,80}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OverlayStyle(_Strict):
    """Caption defaults for this character; the overlay URL's parameters override each one."""

    font: str | None = Field(None, description="CSS font family, e.g. 'DejaVu Sans'")
    size: int | None = Field(None, ge=8, le=200, description="font size in pixels")
    color: str | None = Field(None, description="text colour (CSS colour)")
    name_color: str | None = Field(None, description="colour of the character's name")
    background: str | None = Field(None, description="caption box colour; 'transparent' for none")

    @field_validator("color", "name_color", "background")
    @classmethod
    def _css_colour(cls, value: str | None) -> str | None:
        if value is not None and not _COLOUR.match(value):
            raise ValueError(f"{value!r} is not a CSS colour (#rrggbb, a name, or rgb()/rgba())")
        return value

    @field_validator("font")
    @classmethod
    def _css_font(cls, value: str | None) -> str | None:
        if value is not None and not _FONT.match(value):
            raise ValueError(f"{value!r} is not a font family name")
        return value


class VoiceSection(_Strict):
    """The character speaks its replies when a card has this section (and voice is not turned off)."""

    enabled: bool = Field(True, description="false keeps the settings but the character silent")
    engine: Literal["espeak-ng", "piper"] = Field("espeak-ng", description="espeak-ng needs no voice file")
    voice: str = Field("en-us", min_length=1, max_length=40, description="espeak-ng voice name, e.g. en-us, en-gb")
    rate: int = Field(170, ge=80, le=450, description="espeak-ng words per minute")
    pitch: int = Field(50, ge=0, le=99, description="espeak-ng pitch, 0-99")
    model: str | None = Field(
        None, description="piper: the .onnx voice file (its .onnx.json next to it); relative to the card"
    )

    @field_validator("voice")
    @classmethod
    def _voice_name(cls, value: str) -> str:
        # Passed to espeak-ng as an argument: a name, never an option.
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_+\-]*", value):
            raise ValueError(f"{value!r} is not a voice name (letters, digits, '-', '+', '_')")
        return value
