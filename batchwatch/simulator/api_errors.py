"""Mistral's error, as the simulator answers it: the documented body and the exception that
carries one out of the simulation to the HTTP layer (docs/mistral-api.md §3)."""

from __future__ import annotations

from typing import Any


class SimApiError(Exception):
    """An error answered with Mistral's documented body (``error_body``)."""

    def __init__(self, status_code: int, message: str, error_type: str = "invalid_request_error"):
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.error_type = error_type


def error_body(message: str, error_type: str = "invalid_request_error") -> dict[str, Any]:
    """Mistral's documented error body (docs/mistral-api.md §3, DOC-ERR)."""
    return {"object": "error", "message": message, "type": error_type, "param": None, "code": None}
