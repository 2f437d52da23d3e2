"""How every provider's simulator app is put together, in one place: the routers, and in
front of them the shared gateway (count, delay, then the provider's own refusal), any
provider middleware around the gateway, and, outermost, the shared fault layer.

Each provider's ``app`` brings only what is its own: its routers, its refusal, its error
handlers, and middleware such as Anthropic's request ids.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from starlette.types import ASGIApp

from batchwatch.simulator.control import RequestCounts
from batchwatch.simulator.fault_injector import faults_router
from batchwatch.simulator.fault_layer import FaultLayer
from batchwatch.simulator.gateway import Gateway, Refusal
from batchwatch.simulator.settings import SimulatorSettings

ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


def assemble_app(
    provider: str,
    settings: SimulatorSettings,
    simulation: RequestCounts,
    *,
    v1_routers: Sequence[APIRouter],
    control: APIRouter,
    refusal: Refusal,
    handlers: Mapping[type[Exception], ErrorHandler],
    around_gateway: Sequence[Callable[[ASGIApp], ASGIApp]] = (),
) -> FastAPI:
    """The app serving ``simulation``: ``v1_routers`` behind the gateway and the fault
    layer, ``control`` (the ``/_sim`` routes) and the faults' routes beside them.
    ``around_gateway`` middleware sits between the gateway and the fault layer."""
    app = FastAPI(title=f"batchwatch {provider} simulator", version="1")
    app.state.simulation = simulation
    for router in (*v1_routers, control, faults_router(simulation.faults)):
        app.include_router(router)
    for error, handler in handlers.items():
        app.add_exception_handler(error, handler)
    # The gateway matches against the routers' own routes: FastAPI wraps included
    # routers in internal objects that do not expose the path templates.
    v1_routes = [route for router in v1_routers for route in router.routes]
    app.add_middleware(
        Gateway, settings=settings, routes=v1_routes, count=simulation.count_request,
        refusal=refusal,
    )  # fmt: skip
    for middleware in around_gateway:
        app.add_middleware(middleware)
    # Outermost, so that a fault can pre-empt the gateway (a 429 needs no valid key).
    app.add_middleware(
        FaultLayer, injector=simulation.faults, routes=v1_routes, count=simulation.count_request
    )
    return app
