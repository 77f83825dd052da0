"""Keep configured secrets (tokens, API keys) out of logs and error text.

Settings hold secrets as ``SecretStr``, which never prints its value; this catches the other way
a secret escapes: a library or server echoing it back inside an error message or a debug log.
:func:`install_secret_redaction` puts a filter on the root logger's handlers that replaces every
configured secret value with ``[redacted]`` in messages, arguments and tracebacks.

Some secrets are not settings: the Twitch token pair lives in a file and changes at every
refresh. Whoever loads or receives one calls :func:`register_secret`; every redactor, installed
before or after, redacts it from then on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pydantic import BaseModel, SecretStr

__all__ = ["REDACTED", "SecretRedactor", "install_secret_redaction", "register_secret", "secret_values"]

REDACTED = "[redacted]"
_MIN_SECRET_CHARS = 6  # shorter "secrets" would redact ordinary words
_registered: set[str] = set()  # secrets met at run time (token files), shared by every redactor


def register_secret(*values: str) -> None:
    """Redact these values from every log line from now on (a token loaded from a file, refreshed)."""
    _registered.update(value for value in values if len(value) >= _MIN_SECRET_CHARS)


def secret_values(settings: BaseModel) -> list[str]:
    """Every SecretStr value in the settings, longest first (so no secret is half-redacted)."""
    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        # A dict of sections: the platform plug-ins' own settings, by platform name.
        for item in value.values() if isinstance(value, dict) else [value]:
            if isinstance(item, SecretStr):
                found.append(item.get_secret_value())
            elif isinstance(item, BaseModel):
                found.extend(secret_values(item))
    return sorted({value for value in found if len(value) >= _MIN_SECRET_CHARS}, key=len, reverse=True)


class SecretRedactor(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [secret for secret in secrets if len(secret) >= _MIN_SECRET_CHARS]

    def redact(self, text: str) -> str:
        # Longest first, so a secret containing another is never half-redacted.
        for secret in sorted({*self.secrets, *_registered}, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def install_secret_redaction(settings: BaseModel, logger: logging.Logger | None = None) -> SecretRedactor:
    """Filter every handler of ``logger`` (default: root); returns the filter for error text too."""
    redactor = SecretRedactor(secret_values(settings))
    for handler in (logger or logging.getLogger()).handlers:
        handler.addFilter(redactor)
    return redactor
