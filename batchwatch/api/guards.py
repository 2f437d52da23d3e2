"""The local API's guards: body size limits, and the answers for a database outage and for
a method a path does not have. Plain ASGI and exception handlers, wired by ``create_app``."""

import re
from collections.abc import Awaitable, Callable, Mapping

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from batchwatch.api.native_errors import shape_of
from batchwatch.logs import get_logger, redact

log = get_logger("batchwatch.api")

#: The largest request body any route accepts: every JSON body here is small.
MAX_BODY_BYTES = 1024 * 1024  # 1 MiB
#: ``POST /v1/files`` relays a batch input file, so it gets Mistral's own upload limit.
MAX_UPLOAD_BYTES = 512 * 1024 * 1024  # 512 MiB
#: An Anthropic Message Batch carries its requests inline: Anthropic's own limit on it.
MAX_MESSAGE_BATCH_BYTES = 256 * 1024 * 1024  # 256 MiB


class BodySizeLimit:
    """Refuses a request body over its route's limit with 413, without reading it whole.

    A declared ``Content-Length`` over the limit is refused before one byte is read; a
    chunked body is counted as it streams in and refused at the first byte past the limit,
    so a client cannot make the daemon buffer more than the limit."""

    def __init__(self, app: ASGIApp, default: int, per_route: Mapping[tuple[str, str], int]):
        self.app = app
        self.default = default
        self.per_route = per_route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_route.get((scope["method"], scope["path"]), self.default)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(limit, scope["path"])(scope, receive, send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException: FastAPI lets it through its body parsing, and its
                    # handler answers 413 with this detail.
                    raise HTTPException(413, _too_large_detail(limit), _CLOSE)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except HTTPException as exc:
            # Raised where no handler caught it (read outside FastAPI's parsing).
            if exc.status_code != 413 or started:
                raise
            await _too_large(limit, scope["path"])(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before we see it
    return None


def _too_large_detail(limit: int) -> str:
    return f"request body too large: the limit is {limit} bytes ({limit // 1024 // 1024} MiB)"


# With a 413 the connection is closed: the rest of the body is never going to be read.
_CLOSE = {"Connection": "close"}


def _too_large(limit: int, path: str) -> JSONResponse:
    render = shape_of(path)  # a provider-native route answers in its provider's shape
    if render is not None:
        return render(413, _too_large_detail(limit), None, _CLOSE)
    return JSONResponse({"detail": _too_large_detail(limit)}, status_code=413, headers=_CLOSE)


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """Any route, when the store cannot reach the database: 503, never a traceback."""
    detail = redact(str(exc))  # StoreUnavailable says "database unavailable: ..." already
    log.warning("api_database_unavailable", method=request.method, path=request.url.path)
    render = shape_of(request.url.path)
    if render is not None:
        return render(503, detail)
    return JSONResponse({"detail": detail}, status_code=503)


def allow_every_method(app: FastAPI) -> Callable[[Request, Exception], Awaitable[Response]]:
    """A 405 that lists every method of the path: routing stops at the first route whose
    path matches, so ``OPTIONS /v1/batch/jobs`` would otherwise say ``Allow: GET`` and hide
    the POST (RFC 9110 asks for all of them). The methods come from the OpenAPI paths."""
    table: list[tuple[re.Pattern[str], str]] = []

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        if not table:
            for template, operations in app.openapi()["paths"].items():
                pattern = re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template))
                methods = ", ".join(sorted(m.upper() for m in operations))
                table.append((re.compile(pattern), methods))
        allow = next((m for p, m in table if p.fullmatch(request.url.path)), None)
        headers = {"Allow": allow} if allow else getattr(exc, "headers", None)
        return JSONResponse({"detail": "Method Not Allowed"}, status_code=405, headers=headers)

    return method_not_allowed
