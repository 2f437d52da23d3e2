"""The simulator's ASGI app: the routers, and in front of them the gateway (count, delay,
auth, as Mistral's gateway does) and, outermost, the fault layer."""

from __future__ import annotations

import asyncio
import secrets

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from batchwatch.simulator.api_errors import SimApiError, error_body
from batchwatch.simulator.fault_injector import faults_router
from batchwatch.simulator.fault_layer import FaultLayer, route_key
from batchwatch.simulator.files_routes import files_router
from batchwatch.simulator.routes import batch_router, control_router
from batchwatch.simulator.settings import SimulatorSettings
from batchwatch.simulator.simulation import Simulation


class _Gateway:
    """What Mistral's gateway does before a ``/v1`` route runs: count it, delay it, check
    the bearer key. Done here rather than as a FastAPI dependency so that a bad key wins
    over every other error (a 422 must not leak to a caller without a key)."""

    def __init__(
        self, app: ASGIApp, simulation: Simulation, settings: SimulatorSettings,
        routes: list[BaseRoute],
    ) -> None:  # fmt: skip
        self.app = app
        self.simulation = simulation
        self.settings = settings
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        self.simulation.count_request(route_key(self.routes, scope))
        if self.settings.latency_seconds > 0:
            await asyncio.sleep(self.settings.latency_seconds)
        if self._authorized(scope):
            await self.app(scope, receive, send)
            return
        body = error_body("Unauthorized: missing or invalid API key", "authentication_error")
        reply = JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        await reply(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        headers = dict(scope["headers"])
        scheme, _, key = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return False
        return self.settings.api_key is None or secrets.compare_digest(key, self.settings.api_key)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, SimApiError):  # registered for SimApiError only
        raise exc
    return JSONResponse(error_body(exc.message, exc.error_type), status_code=exc.status_code)


def create_sim_app(settings: SimulatorSettings, simulation: Simulation | None = None) -> FastAPI:
    """The simulator's ASGI app. ``settings`` drives auth and latency; the lifecycle timings
    are the ``simulation``'s own (built from ``settings`` when not given)."""
    simulation = simulation or Simulation(settings)
    app = FastAPI(title="batchwatch Mistral simulator", version="1")
    app.state.simulation = simulation
    v1_routers = (batch_router(simulation), files_router(simulation))
    for router in (*v1_routers, control_router(simulation), faults_router(simulation.faults)):
        app.include_router(router)
    app.add_exception_handler(SimApiError, _api_error)
    # The gateway matches against the routers' own routes: FastAPI wraps included
    # routers in internal objects that do not expose the path templates.
    v1_routes = [route for router in v1_routers for route in router.routes]
    app.add_middleware(_Gateway, simulation=simulation, settings=settings, routes=v1_routes)
    # Outermost, so that a fault can pre-empt the gateway (a 429 needs no valid key).
    app.add_middleware(
        FaultLayer, injector=simulation.faults, routes=v1_routes, count=simulation.count_request
    )
    return app
