"""What a new streamer meets in the first hour: each mistake refused with its fix, nothing noisy."""

from __future__ import annotations

import pytest

from bot.app import build_manager
from engine.errors import SettingsError


async def test_a_mistyped_default_persona_is_refused_with_a_did_you_mean(make_settings, scripted, counter) -> None:
    settings = make_settings(core={"default_persona": "pipp"})
    with pytest.raises(SettingsError, match=r"COSTAR_DEFAULT_PERSONA: no persona named 'pipp'; did you mean 'pip'\?"):
        await build_manager(settings, backend=scripted, counter=counter)
