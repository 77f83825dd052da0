"""Reading vLLM's error replies and turning them into the engine's error tree.

vLLM has answered errors in two JSON shapes over its history (see docs/serving.md):

    nested (current):  {"error": {"message": ..., "type": ..., "param": ..., "code": 404}}
    flat (older):      {"object": "error", "message": ..., "type": ..., "param": ..., "code": 404}

and FastAPI itself answers unknown routes and validation failures with ``{"detail": ...}``.
:func:`parse_error_body` reads all of them; :func:`classify` decides what the backend should do:

    UNAVAILABLE       connection refused, timeout, 502/503/504  -> retry with backoff
    CONTEXT_TOO_LONG  400 naming input_tokens/max_tokens         -> shorten the prompt, retry once
    MODEL_NOT_FOUND   404 for the requested model/adapter        -> load the adapter, retry once
    OTHER             anything else                              -> BackendError at once
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from typing import Any

import openai

from engine.errors import BackendError, BackendUnavailable, ContextTooLong, ModelNotFound

__all__ = [
    "AdaptersMissing",
    "ErrorKind",
    "ServerError",
    "classify",
    "error_from_openai",
    "parse_error_body",
    "to_backend_error",
]

_RETRYABLE_STATUSES = frozenset({502, 503, 504})
_CONTEXT_PARAMS = frozenset({"input_tokens", "max_tokens", "messages", "prompt"})
# Servers that leave ``param`` empty still say it in words; vLLM: "This model's maximum context length is ...".
_CONTEXT_WORDS = re.compile(r"maximum context length|context length|too many tokens|prompt is too long", re.I)
# A bare FastAPI "Not Found" means a wrong route (base_url without /v1?), not an unknown model.
_NOT_FOUND_WORDS = re.compile(r"does not exist|unknown model|model\b.*\bnot found", re.I)


class ErrorKind(enum.Enum):
    UNAVAILABLE = "unavailable"
    CONTEXT_TOO_LONG = "context_too_long"
    MODEL_NOT_FOUND = "model_not_found"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class ServerError:
    """One error reply, whatever shape it came in. ``status`` is None for in-band stream errors."""

    message: str
    status: int | None = None
    type: str | None = None
    param: str | None = None
    code: str | None = None


class AdaptersMissing(BackendError):
    """The server does not serve some configured personas' adapters (found by the startup check)."""

    def __init__(self, missing: dict[str, str], served: list[str], hint: str) -> None:
        self.missing = missing  # adapter name -> persona id
        self.served = served
        listing = ", ".join(f"{name} (persona {persona})" for name, persona in sorted(missing.items()))
        super().__init__(
            f"the model server does not serve these adapters: {listing}; it serves: "
            f"{', '.join(served) or 'nothing'}. {hint}"
        )


def _decode(body: object) -> object:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            return json.loads(body)
        except ValueError:
            return body
    return body


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def parse_error_body(body: object, status: int | None = None) -> ServerError:
    """Read a nested, flat, FastAPI ``detail`` or plain-text error body."""
    decoded = _decode(body)
    if isinstance(decoded, dict) and isinstance(decoded.get("error"), dict):
        decoded = decoded["error"]
    if not isinstance(decoded, dict):
        return ServerError(message=str(decoded or "no error message"), status=status)
    message = decoded.get("message") or decoded.get("detail") or decoded.get("error") or "no error message"
    code = decoded.get("code")
    if status is None and isinstance(code, int) and 400 <= code < 600:
        status = code
    return ServerError(
        message=message if isinstance(message, str) else json.dumps(message),
        status=status,
        type=_text(decoded.get("type")),
        param=_text(decoded.get("param")),
        code=_text(code),
    )


def classify(error: ServerError) -> ErrorKind:
    if error.status in _RETRYABLE_STATUSES:
        return ErrorKind.UNAVAILABLE
    if error.status == 400 and (error.param in _CONTEXT_PARAMS or _CONTEXT_WORDS.search(error.message)):
        return ErrorKind.CONTEXT_TOO_LONG
    if error.status == 404 and (error.param == "model" or _NOT_FOUND_WORDS.search(error.message)):
        return ErrorKind.MODEL_NOT_FOUND
    return ErrorKind.OTHER


def _raw_body(exc: openai.APIStatusError) -> object:
    # The client unwraps {"error": {...}} into exc.body but leaves flat and FastAPI shapes alone;
    # the response text is the full original either way.
    try:
        return exc.response.text
    except Exception:  # the body of a streamed response may be unread
        return exc.body


def error_from_openai(exc: openai.OpenAIError) -> tuple[ErrorKind, ServerError]:
    """What went wrong, read from any exception the openai client raises."""
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return ErrorKind.UNAVAILABLE, ServerError(message=str(exc) or type(exc).__name__)
    if isinstance(exc, openai.APIStatusError):
        error = parse_error_body(_raw_body(exc), status=exc.status_code)
        return classify(error), error
    if isinstance(exc, openai.APIError):  # in-band error event after HTTP 200
        error = parse_error_body(exc.body if exc.body is not None else exc.message)
        return ErrorKind.OTHER, ServerError(
            message=f"error inside the reply stream: {error.message}",
            type=error.type,
            param=error.param,
            code=error.code,
        )
    return ErrorKind.OTHER, ServerError(message=str(exc))


# transformers serve started with a model argument answers any other model name with this (HTTP 400).
_PINNED_WORDS = re.compile(r"\bpinned to\b", re.I)


def to_backend_error(
    kind: ErrorKind,
    error: ServerError,
    model: str | None,
    *,
    base_url: str | None = None,
    adapter: bool = False,
    persona: str | None = None,
) -> BackendError:
    """The engine's error; with ``base_url`` the message names the server and the likely fix.
    ``adapter``: ``model`` is a persona's LoRA adapter name, not the base model; ``persona``: who asked."""
    status = f"HTTP {error.status}: " if error.status else ""
    detail = f"{status}{error.message}"
    where = f" at {base_url}" if base_url else ""
    if kind is ErrorKind.UNAVAILABLE:
        hint = "; is it running, and is COSTAR_BACKEND_BASE_URL right?" if base_url else ""
        return BackendUnavailable(f"model server{where} unavailable ({detail}){hint}")
    if kind is ErrorKind.CONTEXT_TOO_LONG:
        return ContextTooLong(f"the prompt is too long for the model server ({detail})")
    if kind is ErrorKind.MODEL_NOT_FOUND or (error.status == 400 and _PINNED_WORDS.search(error.message)):
        return ModelNotFound(model or "?", _unknown_model_message(model, detail, where, adapter, persona))
    if error.status == 404 and base_url and not base_url.rstrip("/").endswith("/v1"):
        return BackendError(
            f"model server error ({detail}){where}: no such endpoint; COSTAR_BACKEND_BASE_URL usually ends "
            f"in /v1, e.g. {base_url.rstrip('/')}/v1"
        )
    return BackendError(f"model server error{where} ({detail})")


def _unknown_model_message(model: str | None, detail: str, where: str, adapter: bool, persona: str | None) -> str:
    whose = f"persona {persona}" if persona else "a persona"
    message = f"the model server{where} does not serve {model!r}, the model {whose} answers with ({detail})"
    if adapter:
        message += (
            f"; {model!r} is the LoRA adapter bound in {whose}'s card (model.adapter): serve it (vLLM with the "
            "arguments from `costar vllm-args`), or remove the binding from that card to answer with the base model"
        )
    return message
