"""Anthropic's error, as the simulator answers it: the documented body and the exception that
carries one from the simulation to the HTTP layer.

The body (docs.anthropic.com, "Errors"; ``ErrorResponse`` in Anthropic's OpenAPI) is
``{"type": "error", "error": {"type": ..., "message": ...}, "request_id": "req_..."}``; the
``request_id`` is also every response's ``request-id`` header. The type follows the status:
400 invalid_request_error, 401 authentication_error, 403 permission_error, 404
not_found_error, 413 request_too_large, 429 rate_limit_error, 500 api_error, 529
overloaded_error (any other 4xx: invalid_request_error, as the documentation says).
"""

from __future__ import annotations

import secrets
from typing import Any

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def error_type_for(status_code: int) -> str:
    """The documented error type of ``status_code``."""
    if status_code in ERROR_TYPES:
        return ERROR_TYPES[status_code]
    return "api_error" if status_code >= 500 else "invalid_request_error"


class AnthropicApiError(Exception):
    """An error answered with Anthropic's documented body (``error_body``)."""

    def __init__(self, status_code: int, message: str, error_type: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.error_type = error_type or error_type_for(status_code)


def error_body(error_type: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    """The documented error body; ``request_id`` is left out when there is none."""
    body: dict[str, Any] = {"type": "error", "error": {"type": error_type, "message": message}}
    if request_id is not None:
        body["request_id"] = request_id
    return body


def base62(number: int, width: int) -> str:
    """``number`` in ``width`` base-62 digits (the alphabet of Anthropic's ids)."""
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(_BASE62[digit])
    return "".join(reversed(digits))


def random_id(prefix: str) -> str:
    """``prefix`` + "01" + 22 random base-62 characters, the shape of ``msgbatch_013Zva2C…``
    and ``req_018EeWyX…`` in Anthropic's documentation."""
    return f"{prefix}01{base62(secrets.randbits(131), 22)}"


def new_request_id() -> str:
    return random_id("req_")
