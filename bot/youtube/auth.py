"""The YouTube login: ``costar youtube auth`` once, then a token file under the data dir.

Google's OAuth flow for installed apps (google-auth-oauthlib's ``InstalledAppFlow``): costar opens a
one-time local web server on 127.0.0.1, prints (and opens) Google's consent URL, and the streamer logs
in with the channel the bot speaks as. The access and refresh tokens are written to
``DATA_DIR/youtube_tokens.json`` (mode 0600); every token value loaded, saved or refreshed is
registered with the log redaction, as Twitch's are. google-auth refreshes the access token when it
expires, and the adapter writes the refreshed one back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.oauth2.credentials import Credentials

from bot.youtube.settings import YouTubeSettings
from engine.errors import SettingsError
from engine.observability.redact import register_secret
from engine.settings import Settings

__all__ = ["SCOPES", "YouTubeTokenStore", "authorize", "token_path"]

# Sending needs youtube or youtube.force-ssl (liveChatMessages.insert); reading is covered by it too.
SCOPES: tuple[str, ...] = ("https://www.googleapis.com/auth/youtube.force-ssl",)


def token_path(settings: Settings, youtube: YouTubeSettings) -> Path:
    return youtube.token_file or settings.core.data_dir / "youtube_tokens.json"


class YouTubeTokenStore:
    """The Google credentials in a JSON file only its owner may read."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> Credentials:
        try:
            info = json.loads(self.path.read_text(encoding="utf-8"))
            credentials: Credentials = Credentials.from_authorized_user_info(info, list(SCOPES))
        except FileNotFoundError as exc:
            raise SettingsError(f"no YouTube token at {self.path}: run `costar youtube auth` once") from exc
        except (ValueError, TypeError, KeyError) as exc:
            raise SettingsError(f"{self.path} is not a YouTube token file: run `costar youtube auth` again") from exc
        _register(credentials)
        return credentials

    def save(self, credentials: Credentials) -> None:
        _register(credentials)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        # As Twitch's store: a leftover .tmp is removed, a new file is 0600, never written through a link.
        partial.unlink(missing_ok=True)
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(credentials.to_json())
        partial.replace(self.path)


def _register(credentials: Credentials) -> None:
    register_secret(*(value for value in (credentials.token, credentials.refresh_token) if value))


def authorize(
    settings: Settings,
    youtube: YouTubeSettings,
    *,
    announce: Callable[[str], None] = print,
    open_browser: bool = True,
    flow_factory: Callable[..., Any] | None = None,
) -> Path:
    """Run Google's installed-app flow and store the token; the token file's path."""
    secrets = youtube.client_secrets_file
    if secrets is None or not secrets.is_file():
        raise SettingsError(
            "YOUTUBE_CLIENT_SECRETS_FILE must name the OAuth client JSON from Google Cloud (see docs/youtube.md)"
        )
    if flow_factory is None:
        from google_auth_oauthlib.flow import InstalledAppFlow

        flow_factory = InstalledAppFlow.from_client_secrets_file
    flow = flow_factory(str(secrets), scopes=list(SCOPES))
    credentials = flow.run_local_server(
        host="127.0.0.1",
        port=0,
        open_browser=open_browser,
        authorization_prompt_message="Log in to YouTube as the channel the co-host speaks as: {url}",
        success_message="costar has its YouTube token; you can close this tab.",
    )
    path = token_path(settings, youtube)
    YouTubeTokenStore(path).save(credentials)
    announce(f"Saved the YouTube token to {path}")
    return path
