"""The gateway every simulator puts in front of its ``/v1`` routes, as a provider's edge does
before any route runs: count the request, delay it, then let the provider refuse it (a
missing or wrong key, a missing header) with that provider's own error body.

Middleware rather than a FastAPI dependency, so that a refusal wins over every other error:
a 400 or a 422 must not tell a caller without a key what the API expects. ``/_sim`` passes
through untouched. The helpers read the key the way the providers' gateways do.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Sequence

from fastapi.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from batchwatch.simulator.fault_layer import route_key
from batchwatch.simulator.settings import SimulatorSettings

#: The provider's answer to a request it refuses before any route runs; ``None`` lets it in.
Refusal = Callable[[Scope, SimulatorSettings], Response | None]


class Gateway:
    """Counts each ``/v1`` request (``count``, by route key), waits the settings' latency,
    then answers ``refusal``'s response instead of the app's when it gives one."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: SimulatorSettings,
        routes: Sequence[BaseRoute],
        count: Callable[[str], None],
        refusal: Refusal,
    ) -> None:
        self.app = app
        self.settings = settings
        self.routes = routes
        self.count = count
        self.refusal = refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        self.count(route_key(self.routes, scope))
        if self.settings.latency_seconds > 0:
            await asyncio.sleep(self.settings.latency_seconds)
        refused = self.refusal(scope, self.settings)
        await (self.app if refused is None else refused)(scope, receive, send)


def header(scope: Scope, name: bytes) -> str:
    """The value of the request header ``name`` (lower case), ``""`` when it is absent."""
    value: bytes = dict(scope["headers"]).get(name, b"")
    return value.decode("latin-1")


def bearer_key(scope: Scope) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header; ``None`` when none is offered."""
    scheme, _, key = header(scope, b"authorization").partition(" ")
    key = key.strip()
    return key if scheme.lower() == "bearer" and key else None


def key_accepted(key: str, settings: SimulatorSettings) -> bool:
    """Any non-empty key when the settings name none, else exactly that one (compared in
    constant time, so that the answer's timing does not tell how much of a key was right)."""
    expected = settings.api_key
    return bool(key) and (expected is None or secrets.compare_digest(key, expected))
