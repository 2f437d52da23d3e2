"""What every provider's simulation shares for the ``/_sim`` control routes: the request
counts behind ``/_sim/stats`` (``RequestCounts``, a base class of each simulation) and the
routes that read the truth back (``control_router``: history, stats, stats reset).

Each provider's ``routes.control_router`` starts from this router and adds its own seeding
(``POST /_sim/jobs/bulk``, whose body differs per provider) and quirks.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from enum import Enum
from typing import Any, Protocol

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from batchwatch.simulator.fault_injector import FaultInjector


class RequestCounts:
    """``/v1`` requests per route key (counted by the gateway and the fault layer), and the
    simulation's fault injector, whose request log a stats reset clears too.

    The counts have a lock of their own: they touch no other state of the simulation.
    """

    def __init__(self, faults: FaultInjector) -> None:
        self.faults = faults
        self._counts_lock = threading.Lock()
        self._requests: Counter[str] = Counter()

    def count_request(self, key: str) -> None:
        with self._counts_lock:
            self._requests[key] += 1

    def stats(self) -> dict[str, Any]:
        with self._counts_lock:
            return {"total": self._requests.total(), "requests": dict(self._requests)}

    def reset_stats(self) -> None:
        with self._counts_lock:
            self._requests.clear()
        self.faults.clear_log()


class _Entry(Protocol):
    """One step of a job's true status sequence (each provider's ``StatusEntry``)."""

    @property
    def status(self) -> Enum: ...

    @property
    def at(self) -> float: ...


class Controlled(Protocol):
    """A simulation the control routes can read."""

    def history(self, job_id: str, /) -> Sequence[_Entry]: ...

    def stats(self) -> dict[str, Any]: ...

    def reset_stats(self) -> None: ...


def control_router(simulation: Controlled) -> APIRouter:
    """``/_sim``: the truth for tests; no auth, never faulted.

    * ``GET /_sim/jobs/{id}/history`` → ``{"job_id", "statuses": [{"status", "at"}]}``.
    * ``GET /_sim/stats`` → ``{"total": n, "requests": {"<METHOD> <route template>": n}}``.
    * ``POST /_sim/stats/reset``: clears them and the request log; answers the empty stats.
    """
    router = APIRouter(prefix="/_sim")

    @router.get("/jobs/{job_id}/history")
    async def history(job_id: str) -> JSONResponse:
        entries = simulation.history(job_id)
        statuses = [{"status": e.status.value, "at": e.at} for e in entries]
        return JSONResponse({"job_id": job_id, "statuses": statuses})

    @router.get("/stats")
    async def stats() -> JSONResponse:
        return JSONResponse(simulation.stats())

    @router.post("/stats/reset")
    async def reset_stats() -> JSONResponse:
        simulation.reset_stats()
        return JSONResponse(simulation.stats())

    return router
