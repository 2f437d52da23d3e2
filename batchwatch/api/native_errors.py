"""Errors of the provider-native routes, in each provider's own shape, so its SDK raises
the exception it would raise against the real API (``NotFoundError``, ...).

The routes raise ``HTTPException`` as the ``/v1`` routes do, and FastAPI's validation and
the token guard raise theirs: one pair of handlers renders them all, by the path's prefix
(``/openai/``: OpenAI's ``{"error": {message, type, param, code}}``; ``/anthropic/``:
Anthropic's ``{"type": "error", "error": {type, message}}``), and leaves every other path
to FastAPI's own handlers.
"""

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

OPENAI_PREFIX = "/openai"
ANTHROPIC_PREFIX = "/anthropic"

# OpenAI's (type, code) per status, as its API answers them.
_OPENAI_KINDS: dict[int, tuple[str, str | None]] = {
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", None),
    409: ("invalid_request_error", "conflict"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("requests", "rate_limit_exceeded"),
}
# Anthropic's error types per status (its "Errors" page).
_ANTHROPIC_KINDS: dict[int, str] = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def openai_error(
    status: int, message: str, param: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    fault = "server_error" if status >= 500 else "invalid_request_error"
    kind, code = _OPENAI_KINDS.get(status, (fault, None))
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def anthropic_error(
    status: int, message: str, param: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    del param  # Anthropic's body has no field for it: the message names it
    fault = "api_error" if status >= 500 else "invalid_request_error"
    body = {
        "type": "error",
        "error": {"type": _ANTHROPIC_KINDS.get(status, fault), "message": message},
    }
    return JSONResponse(body, status_code=status, headers=headers)


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorOut(BaseModel):
    """OpenAI's ``ErrorResponse``."""

    error: OpenAIErrorDetail


class AnthropicErrorDetail(BaseModel):
    type: str
    message: str


class AnthropicErrorOut(BaseModel):
    """Anthropic's error body."""

    type: str = "error"
    error: AnthropicErrorDetail


def _declared(model: type[BaseModel], upstream: str) -> dict[int | str, dict[str, Any]]:
    """What a native route may answer besides its success, declared in /openapi.json (a
    "4XX" entry also stands for FastAPI's 422, which these routes answer as 400)."""
    says: dict[int | str, str] = {
        400: "a malformed parameter or body; the message names the field",
        401: "missing or wrong token (see api.token_file)",
        404: "no such batch (or file)",
        409: f"{upstream} is not configured on this daemon, or the batch already ended",
        413: "request body over the limit",
        "4XX": f"{upstream} refused the request; its status passes through",
        502: f"{upstream} failed, or refused batchwatch's API key",
        503: f"the database is unavailable, or {upstream}'s answer is unknown: retry",
    }
    return {status: {"model": model, "description": text} for status, text in says.items()}


OPENAI_ERRORS = _declared(OpenAIErrorOut, "OpenAI")
ANTHROPIC_ERRORS = _declared(AnthropicErrorOut, "Anthropic")

_Render = Callable[..., JSONResponse]
_SHAPES: tuple[tuple[str, _Render], ...] = (
    (OPENAI_PREFIX + "/", openai_error),
    (ANTHROPIC_PREFIX + "/", anthropic_error),
)


def shape_of(path: str) -> _Render | None:
    """How an error on ``path`` is rendered: its provider's shape; None: FastAPI's."""
    return next((render for prefix, render in _SHAPES if path.startswith(prefix)), None)


def _where(loc: Sequence[Any]) -> str:
    """A validation error's location as the request names it: ``requests.0.custom_id``
    (``body``/``query``/``path`` left out)."""
    parts = [str(p) for p in loc]
    return ".".join(parts[1:] if parts and parts[0] in ("body", "query", "path") else parts)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    render = shape_of(request.url.path)
    if render is None:
        return await http_exception_handler(request, exc)
    headers = getattr(exc, "headers", None)
    return render(exc.status_code, str(exc.detail), None, headers)


async def _invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    render = shape_of(request.url.path)
    if render is None:
        return await request_validation_exception_handler(request, exc)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    where = _where(first.get("loc", ()))
    message = f"{where}: {first.get('msg', '')}" if where else str(first.get("msg", ""))
    # Both APIs answer a malformed request with 400 (not FastAPI's 422); their SDKs raise
    # BadRequestError for it.
    return render(400, message, where or None)


def install(app: FastAPI) -> None:
    """The two handlers, for every route of ``app`` (other paths keep FastAPI's shapes)."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
