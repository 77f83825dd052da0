"""What every costar web server checks: loopback binds, the Host header, secrets kept in files.

The overlay (bot/overlay) and the dashboard (bot/dashboard) share these, so a rule about who may
reach a page served by the bot has one home.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from engine.errors import SettingsError

__all__ = ["MIN_TOKEN_CHARS", "host_name", "is_loopback", "kept_token", "same_secret", "strong_enough"]

MIN_TOKEN_CHARS = 16  # the ones costar makes have 32 (secrets.token_urlsafe(24))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """The name in a Host header (``127.0.0.1:8765``, ``[::1]:8765``, ``localhost``), lower case."""
    try:
        return urlsplit(f"//{host_header}").hostname or ""
    except ValueError:  # a malformed header ("[::1") names no host we answer to
        return ""


def same_secret(given: str, token: str) -> bool:
    # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500).
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token.encode("utf-8", "surrogatepass"))


def strong_enough(token: str, what: str, source: str, fix: str) -> str:
    """``token`` when it is long enough to guess for no one; an empty one would turn the check off."""
    if len(token) < MIN_TOKEN_CHARS:
        size = "empty" if not token else f"only {len(token)} characters"
        raise SettingsError(f"the {what} token in {source} is {size} (at least {MIN_TOKEN_CHARS} needed): {fix}")
    return token


def kept_token(path: Path, what: str, setting: str) -> tuple[str, bool]:
    """The token kept in ``path``, made there (0600) on first use; and whether it was made just now.

    A kept token survives restarts, so a URL or a login pasted once keeps working. An empty or
    short one (an emptied file) is refused rather than letting anyone in.
    """
    try:
        if path.exists():
            token = path.read_text(encoding="utf-8").strip()
            return strong_enough(
                token, what, str(path), f"delete the file to have a new one made, or set {setting}"
            ), False
        path.parent.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(24)
        # 0600 from the start, and O_NOFOLLOW never writes through a link left in its place.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot keep the {what} token in {path}: {exc}; set {setting}") from exc
    return token, True
