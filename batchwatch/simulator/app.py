"""The simulator's ASGI app: the routers, and in front of them the shared gateway (count,
delay, and Mistral's bearer-key check) and, outermost, the fault layer."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import Scope

from batchwatch.simulator.api_errors import SimApiError, error_body
from batchwatch.simulator.assembly import assemble_app
from batchwatch.simulator.files_routes import files_router
from batchwatch.simulator.gateway import bearer_key, key_accepted
from batchwatch.simulator.routes import batch_router, control_router
from batchwatch.simulator.settings import SimulatorSettings
from batchwatch.simulator.simulation import Simulation


def _refusal(scope: Scope, settings: SimulatorSettings) -> Response | None:
    """Mistral's 401 for a missing or wrong bearer key, whichever it was."""
    key = bearer_key(scope)
    if key is not None and key_accepted(key, settings):
        return None
    body = error_body("Unauthorized: missing or invalid API key", "authentication_error")
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, SimApiError):  # registered for SimApiError only
        raise exc
    return JSONResponse(error_body(exc.message, exc.error_type), status_code=exc.status_code)


def create_sim_app(settings: SimulatorSettings, simulation: Simulation | None = None) -> FastAPI:
    """The simulator's ASGI app. ``settings`` drives auth and latency; the lifecycle timings
    are the ``simulation``'s own (built from ``settings`` when not given)."""
    simulation = simulation or Simulation(settings)
    return assemble_app(
        "Mistral",
        settings,
        simulation,
        v1_routers=(batch_router(simulation), files_router(simulation)),
        control=control_router(simulation),
        refusal=_refusal,
        handlers={SimApiError: _api_error},
    )


def build(settings: SimulatorSettings) -> tuple[Simulation, FastAPI]:
    """The Mistral simulation and its app (``providers.build``)."""
    simulation = Simulation(settings)
    return simulation, create_sim_app(settings, simulation)
