"""The OpenAI simulator's ASGI app: the routers, and in front of them the shared gateway
(count, delay, and OpenAI's bearer-key check) and, outermost, the shared fault layer, which
answers its faults in OpenAI's shapes (``fault_profile``).

Every ``/v1`` error answers with OpenAI's body, never FastAPI's: a request that fails
validation is OpenAI's 400 (``Missing required parameter: 'x'.``, ``param`` naming the
field), an unknown ``/v1`` URL OpenAI's 404 ``Invalid URL (GET /v1/...)``, a missing key
or a wrong one OpenAI's 401 (``invalid_api_key`` for the latter). ``/_sim`` keeps FastAPI's.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from batchwatch.simulator.assembly import assemble_app
from batchwatch.simulator.gateway import bearer_key, key_accepted
from batchwatch.simulator.openai.errors import OpenAIApiError, error_body
from batchwatch.simulator.openai.files_routes import files_router
from batchwatch.simulator.openai.routes import batch_router, control_router
from batchwatch.simulator.openai.simulation import OpenAISimulation
from batchwatch.simulator.settings import SimulatorSettings

_NO_KEY = (
    "You didn't provide an API key. Send it in an Authorization header using Bearer auth "
    "(Authorization: Bearer YOUR_KEY)."
)


def _refusal(scope: Scope, settings: SimulatorSettings) -> Response | None:
    """OpenAI's 401 for a missing key, or for a wrong one; ``None`` when the key is good."""
    key = bearer_key(scope)
    if key is None:
        return JSONResponse(error_body(_NO_KEY), status_code=401)
    if key_accepted(key, settings):
        return None
    message = f"Incorrect API key provided: {_masked(key)}."
    return JSONResponse(error_body(message, code="invalid_api_key"), status_code=401)


def _masked(key: str) -> str:
    """The key as OpenAI echoes it: never whole."""
    return f"{key[:3]}{'*' * 8}{key[-4:]}" if len(key) > 12 else "*" * len(key)


async def _api_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, OpenAIApiError):  # registered for OpenAIApiError only
        raise exc
    return JSONResponse(exc.body(), status_code=exc.status_code)


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """A request FastAPI could not validate: OpenAI's 400 under ``/v1``."""
    if not isinstance(exc, RequestValidationError):
        raise exc
    if not request.url.path.startswith("/v1/"):
        return await request_validation_exception_handler(request, exc)
    first = exc.errors()[0]
    param = ".".join(str(part) for part in first["loc"][1:]) or None
    kind = first["type"]
    if kind == "missing":
        body = error_body(f"Missing required parameter: '{param}'.", param=param,
                          code="missing_required_parameter")  # fmt: skip
    elif kind == "extra_forbidden":
        body = error_body(f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter")
    elif kind == "json_invalid":
        body = error_body("We could not parse the JSON body of your request.")
    else:
        body = error_body(f"Invalid value for '{param}': {first['msg']}.", param=param)
    return JSONResponse(body, status_code=400)


async def _http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's own 404/405 (no such route): OpenAI's body under ``/v1``."""
    if not isinstance(exc, StarletteHTTPException):
        raise exc
    if not request.url.path.startswith("/v1/"):
        return await http_exception_handler(request, exc)
    message = f"Invalid URL ({request.method} {request.url.path})"
    return JSONResponse(error_body(message), status_code=exc.status_code)


def create_app(settings: SimulatorSettings, simulation: OpenAISimulation | None = None) -> FastAPI:
    """The simulator's ASGI app. ``settings`` drives auth and latency; the lifecycle timings
    are the ``simulation``'s own (built from ``settings`` when not given)."""
    simulation = simulation or OpenAISimulation(settings)
    return assemble_app(
        "OpenAI",
        settings,
        simulation,
        v1_routers=(batch_router(simulation), files_router(simulation)),
        control=control_router(simulation),
        refusal=_refusal,
        handlers={
            OpenAIApiError: _api_error,
            RequestValidationError: _invalid_request,
            StarletteHTTPException: _http_error,
        },
    )


def build(settings: SimulatorSettings) -> tuple[OpenAISimulation, FastAPI]:
    """The OpenAI simulation and its app (``providers.build``)."""
    simulation = OpenAISimulation(settings)
    return simulation, create_app(settings, simulation)
