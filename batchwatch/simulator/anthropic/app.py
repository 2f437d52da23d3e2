"""The Anthropic simulator's ASGI app: the routers; in front of them the shared gateway
(count, delay, and Anthropic's checks of the key and ``anthropic-version``); in front of that
the request ids; and outermost the shared fault layer, which answers its faults in
Anthropic's shapes (``fault_profile``).

Auth, as the API and its SDKs do it: the key comes as ``x-api-key: <key>`` (the documented
header, older SDKs) or ``Authorization: Bearer <key>`` (current SDKs); either will do. With
``settings.api_key`` set only that key passes, else any non-empty one. A missing or wrong key
is a 401 authentication_error, checked first so that no other error leaks to a caller
without a key; then a missing ``anthropic-version`` header is a 400 invalid_request_error
(any non-empty value passes: the SDKs send dated versions the simulator cannot list).

Every ``/v1`` response carries a ``request-id`` header (``req_…``), repeated as
``request_id`` in the error bodies the app writes. Body and query validation failures, and
unknown ``/v1`` routes, are answered with Anthropic's error body (400, 404, 405), never
FastAPI's 422; ``/_sim`` keeps FastAPI's own.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from batchwatch.simulator.anthropic.errors import (
    AnthropicApiError,
    error_body,
    error_type_for,
    new_request_id,
)
from batchwatch.simulator.anthropic.routes import batch_router, control_router
from batchwatch.simulator.anthropic.simulation import AnthropicSimulation
from batchwatch.simulator.assembly import assemble_app
from batchwatch.simulator.gateway import bearer_key, header, key_accepted
from batchwatch.simulator.settings import SimulatorSettings

REQUEST_ID = "request_id"  # where ``_RequestIds`` leaves the id, in ``scope["state"]``


class _RequestIds:
    """Gives every ``/v1`` request that passes the fault layer a request id: in
    ``scope["state"]`` for the error bodies, and as the response's ``request-id`` header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        scope.setdefault("state", {})[REQUEST_ID] = request_id
        await self.app(scope, receive, _with_request_id(send, request_id))


def _refusal(scope: Scope, settings: SimulatorSettings) -> Response | None:
    """Anthropic's 401 for a missing or wrong key, then its 400 for a missing
    ``anthropic-version``; ``None`` when the request may go on."""
    request_id = scope.get("state", {}).get(REQUEST_ID)
    keys = _keys(scope)
    if not any(key_accepted(key, settings) for key in keys):
        message = "invalid x-api-key" if keys else "x-api-key header is required"
        return _error(401, message, request_id)
    if not header(scope, b"anthropic-version").strip():
        return _error(400, "anthropic-version: header is required", request_id)
    return None


def _keys(scope: Scope) -> list[str]:
    """The non-empty keys a request offers, from ``x-api-key`` and a bearer token."""
    keys = [header(scope, b"x-api-key").strip(), bearer_key(scope)]
    return [key for key in keys if key]


def _with_request_id(send: Send, request_id: str) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", []), (b"request-id", request_id.encode())]
            message = {**message, "headers": headers}
        await send(message)

    return sending


def _error(status_code: int, message: str, request_id: str | None) -> JSONResponse:
    body = error_body(error_type_for(status_code), message, request_id)
    return JSONResponse(body, status_code=status_code)


def _request_id(request: Request) -> str | None:
    return getattr(request.state, REQUEST_ID, None)


async def _api_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, AnthropicApiError):  # registered for AnthropicApiError only
        raise exc
    body = error_body(exc.error_type, exc.message, _request_id(request))
    return JSONResponse(body, status_code=exc.status_code)


async def _validation_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, RequestValidationError):
        raise exc
    if not request.url.path.startswith("/v1/"):
        return await request_validation_exception_handler(request, exc)
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"] if part not in ("body", "query"))
        problems.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return _error(400, "; ".join(problems), _request_id(request))


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, StarletteHTTPException):
        raise exc
    if not request.url.path.startswith("/v1/"):
        return await http_exception_handler(request, exc)
    message = "Not found" if exc.status_code == 404 else str(exc.detail)
    return _error(exc.status_code, message, _request_id(request))


def create_anthropic_app(settings: SimulatorSettings, simulation: AnthropicSimulation) -> FastAPI:
    """The app serving ``simulation``; ``settings`` drives auth and latency."""
    return assemble_app(
        "Anthropic",
        settings,
        simulation,
        v1_routers=(batch_router(simulation),),
        control=control_router(simulation),
        refusal=_refusal,
        handlers={
            AnthropicApiError: _api_error,
            RequestValidationError: _validation_error,
            StarletteHTTPException: _http_error,
        },
        around_gateway=(_RequestIds,),  # its refusals carry an id too
    )


def build(settings: SimulatorSettings) -> tuple[AnthropicSimulation, FastAPI]:
    """The Anthropic simulation and its app (``providers.build``)."""
    simulation = AnthropicSimulation(settings)
    return simulation, create_anthropic_app(settings, simulation)
