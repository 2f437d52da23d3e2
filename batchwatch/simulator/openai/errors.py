"""OpenAI's error, as the simulator answers it: the ``ErrorResponse`` body of OpenAI's
OpenAPI description (``{"error": {"message", "type", "param", "code"}}``, all four always
present) and the exception that carries one out of the simulation to the HTTP layer."""

from __future__ import annotations

from typing import Any

INVALID_REQUEST = "invalid_request_error"


class OpenAIApiError(Exception):
    """An error answered with OpenAI's body (``error_body``); ``param`` names the request
    field at fault, as OpenAI's own errors do, so a client can point at it."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        error_type: str = INVALID_REQUEST,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.error_type = error_type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.error_type, param=self.param, code=self.code)


def error_body(
    message: str,
    error_type: str = INVALID_REQUEST,
    *,
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """OpenAI's ``ErrorResponse``: ``param`` and ``code`` are required but nullable."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def no_such_file(file_id: str, param: str = "id") -> OpenAIApiError:
    """OpenAI's 404 for a file id it does not know (or no longer has)."""
    return OpenAIApiError(404, f"No such File object: {file_id}", param=param)
