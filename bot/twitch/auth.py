"""The bot account's Twitch token: a one-time device-code login, then a file under the data dir.

``costar twitch auth`` prints a URL and a code; the streamer (logged in as the *bot* account)
opens it and approves the scopes. The access and refresh tokens are written to
``DATA_DIR/twitch_tokens.json`` (mode 0600). On every start the adapter loads that file, twitchio
validates the token and refreshes it when needed, and each refresh is written back, so a restart
never needs a new login. The device-code flow needs no redirect URL or public web server.

Every token value loaded or saved is registered with the log redaction, and twitchio's errors are
described by type and HTTP status only: their text can quote a token (a failed refresh names the
access token; a failed request names its URL, whose query holds the refresh token).
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

from bot.errors import NETWORK_ERRORS, unreachable
from bot.twitch.settings import twitch_settings
from engine.errors import EngineError, SettingsError
from engine.observability.redact import register_secret
from engine.settings import Settings

__all__ = [
    "BROADCASTER_SCOPES",
    "CHAT_SCOPES",
    "StoredToken",
    "TokenStore",
    "authorize_device",
    "broadcaster_token_path",
    "token_path",
    "twitch_failure",
]

# Read chat over EventSub, send over Helix; user:bot + channel:bot also allow sending with an
# app token (twitchio docs for PartialUser.send_message).
CHAT_SCOPES: tuple[str, ...] = ("user:read:chat", "user:write:chat", "user:bot", "channel:bot")
# Stream events only the channel's owner may read: follows (v2 needs a moderator's token; the
# broadcaster is one), cheers and channel-point redemptions. See bot/twitch/events.py.
BROADCASTER_SCOPES: tuple[str, ...] = ("moderator:read:followers", "bits:read", "channel:read:redemptions")


@dataclass(frozen=True, slots=True)
class StoredToken:
    user_id: str
    login: str
    access_token: str
    refresh_token: str


def token_path(settings: Settings) -> Path:
    return twitch_settings(settings).token_file or settings.core.data_dir / "twitch_tokens.json"


def broadcaster_token_path(settings: Settings) -> Path:
    return twitch_settings(settings).broadcaster_token_file or settings.core.data_dir / "twitch_broadcaster_tokens.json"


class TokenStore:
    """One bot token in a JSON file that only its owner may read."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load_optional(self) -> StoredToken | None:
        """The stored token, or None when nobody logged in (a broadcaster login is optional)."""
        return self.load() if self.path.exists() else None

    def load(self) -> StoredToken:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            token = StoredToken(**raw)
            register_secret(token.access_token, token.refresh_token)
            return token
        except FileNotFoundError as exc:
            raise SettingsError(f"no Twitch token at {self.path}: run `costar twitch auth` once") from exc
        except (ValueError, TypeError) as exc:
            raise SettingsError(
                f"{self.path} is not a costar Twitch token file: run `costar twitch auth` again"
            ) from exc

    def save(self, token: StoredToken) -> None:
        register_secret(token.access_token, token.refresh_token)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        # A leftover .tmp (a crash, or a link someone planted) is removed, never reused: a new
        # file created here gets mode 0600 whatever was there, and O_NOFOLLOW never writes through a link.
        partial.unlink(missing_ok=True)
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(asdict(token), handle)
        partial.replace(self.path)  # atomic: a crash never leaves half a token behind; replaces a link, not its target

    def update(self, access_token: str, refresh_token: str) -> None:
        current = self.load()
        self.save(StoredToken(current.user_id, current.login, access_token, refresh_token))


def twitch_failure(exc: twitchio.TwitchioException, doing: str) -> EngineError:
    """What went wrong talking to Twitch, in words that carry no token (never the error's own text)."""
    status = getattr(exc, "status", None)
    if isinstance(exc, twitchio.InvalidTokenException) or status == 401:
        return SettingsError(f"Twitch refused the bot's token while {doing}: run `costar twitch auth` again")
    at = f" (HTTP {status})" if status else ""
    return EngineError(f"Twitch failed while {doing}: {type(exc).__name__}{at}")


async def authorize_device(
    settings: Settings,
    *,
    announce: Callable[[str], None] = print,
    timeout_s: float = 300.0,
    broadcaster: bool = False,
) -> StoredToken:
    """Run Twitch's device-code flow for the bot account (or, with ``broadcaster``, the channel
    owner, for follows, cheers and redemptions) and store the token pair."""
    client_id = twitch_settings(settings).client_id
    if not client_id:
        raise SettingsError("TWITCH_CLIENT_ID is required for `costar twitch auth` (see .env.example)")
    scopes = BROADCASTER_SCOPES if broadcaster else CHAT_SCOPES
    path = broadcaster_token_path(settings) if broadcaster else token_path(settings)
    who = "the BROADCASTER (the channel's owner)" if broadcaster else "the BOT account"
    oauth = OAuth(client_id=client_id, scopes=twitchio.Scopes(list(scopes)))
    try:
        flow = await oauth.device_code_flow()
        announce(f"Log in to Twitch as {who}, open {flow['verification_uri']} and enter {flow['user_code']}")
        async with asyncio.timeout(timeout_s):
            granted = await oauth.device_code_authorization(device_code=flow["device_code"], interval=flow["interval"])
        register_secret(granted["access_token"], granted["refresh_token"])
        validated = await oauth.validate_token(granted["access_token"])
    except twitchio.TwitchioException as exc:
        raise twitch_failure(exc, "logging the bot in") from None
    except TimeoutError:
        raise EngineError(f"nobody approved the login on Twitch within {timeout_s:g} s: run it again") from None
    except NETWORK_ERRORS as exc:
        raise unreachable("Twitch (id.twitch.tv)", exc, "check this machine's internet connection and DNS") from None
    finally:
        await oauth.close()
    token = StoredToken(str(validated.user_id), str(validated.login), granted["access_token"], granted["refresh_token"])
    TokenStore(path).save(token)
    announce(f"Saved the token for {token.login} to {path}")
    return token
