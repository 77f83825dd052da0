"""The bot account's Twitch token: a one-time device-code login, then a file under the data dir.

``costar twitch auth`` prints a URL and a code; the streamer (logged in as the *bot* account)
opens it and approves the scopes. The access and refresh tokens are written to
``DATA_DIR/twitch_tokens.json`` (mode 0600). On every start the adapter loads that file, twitchio
validates the token and refreshes it when needed, and each refresh is written back, so a restart
never needs a new login. The device-code flow needs no redirect URL or public web server.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import twitchio
from twitchio.authentication import OAuth

from engine.errors import SettingsError
from engine.settings import Settings

__all__ = ["CHAT_SCOPES", "StoredToken", "TokenStore", "authorize_device", "token_path"]

# Read chat over EventSub, send over Helix; user:bot + channel:bot also allow sending with an
# app token (twitchio docs for PartialUser.send_message).
CHAT_SCOPES: tuple[str, ...] = ("user:read:chat", "user:write:chat", "user:bot", "channel:bot")


@dataclass(frozen=True, slots=True)
class StoredToken:
    user_id: str
    login: str
    access_token: str
    refresh_token: str


def token_path(settings: Settings) -> Path:
    return settings.twitch.token_file or settings.core.data_dir / "twitch_tokens.json"


class TokenStore:
    """One bot token in a JSON file that only its owner may read."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> StoredToken:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return StoredToken(**raw)
        except FileNotFoundError as exc:
            raise SettingsError(f"no Twitch token at {self.path}: run `costar twitch auth` once") from exc
        except (ValueError, TypeError) as exc:
            raise SettingsError(
                f"{self.path} is not a costar Twitch token file: run `costar twitch auth` again"
            ) from exc

    def save(self, token: StoredToken) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(asdict(token), handle)
        partial.replace(self.path)  # atomic: a crash never leaves half a token behind

    def update(self, access_token: str, refresh_token: str) -> None:
        current = self.load()
        self.save(StoredToken(current.user_id, current.login, access_token, refresh_token))


async def authorize_device(
    settings: Settings, *, announce: Callable[[str], None] = print, timeout_s: float = 300.0
) -> StoredToken:
    """Run Twitch's device-code flow for the bot account and store the token pair."""
    client_id = settings.twitch.client_id
    if not client_id:
        raise SettingsError("TWITCH_CLIENT_ID is required for `costar twitch auth` (see .env.example)")
    oauth = OAuth(client_id=client_id, scopes=twitchio.Scopes(list(CHAT_SCOPES)))
    try:
        flow = await oauth.device_code_flow()
        announce(f"Log in to Twitch as the BOT account, open {flow['verification_uri']} and enter {flow['user_code']}")
        async with asyncio.timeout(timeout_s):
            granted = await oauth.device_code_authorization(device_code=flow["device_code"], interval=flow["interval"])
        validated = await oauth.validate_token(granted["access_token"])
    finally:
        await oauth.close()
    token = StoredToken(str(validated.user_id), str(validated.login), granted["access_token"], granted["refresh_token"])
    TokenStore(token_path(settings)).save(token)
    announce(f"Saved the token for {token.login} to {token_path(settings)}")
    return token
