"""The simulator's HTTP routes over the ``Simulation``: ``/v1/batch/jobs`` and the ``/_sim``
control routes (the files' are in ``files_routes``, the faults' in ``fault_injector``).

* Create validation: the body is ``providers/mistral/schemas.CreateBatchJobIn``, the one
  definition shared with the local API. Exactly one of ``input_files``/``requests`` must be
  non-empty, else a FastAPI-style 422 (a body-shape error like the spec's own constraints).
  ``model`` stays optional, as in the spec.
* ``created_after`` keeps jobs created at or after the instant; naive datetimes are UTC.
  Unknown list query keys are metadata filters, as the SDK flattens ``metadata={...}``
  (``?team=a``; a repeated key matches any of its values).

Control routes, no auth: ``GET /_sim/jobs/{id}/history`` (the true status sequence),
``GET /_sim/stats`` and ``POST /_sim/stats/reset`` (``/v1`` requests per route template),
``POST /_sim/jobs/bulk`` (seed many jobs, for benchmarks: ``count``, ``endpoint``, ``model``,
``total_requests``, ``metadata`` with the ``sim_*`` directives, ``created_by``, and
``pad_bytes``, characters of filler added to each answer so that, say, a 100,000-request job
with ``pad_bytes`` 1000 writes an output file over 100 MB; they read one synthetic input file).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from batchwatch.models import EndpointName, JobStatus, StatusName
from batchwatch.providers.mistral.schemas import CreateBatchJobIn, MetadataKey, MetadataValue
from batchwatch.simulator import control
from batchwatch.simulator.files import RequestLine
from batchwatch.simulator.jobs import JobSpec, SimJobQuery
from batchwatch.simulator.simulation import Simulation


def job_spec(body: CreateBatchJobIn) -> JobSpec:
    """A validated create body as the simulation's job spec."""
    inline = None
    if body.requests:
        inline = tuple(RequestLine(r.custom_id, r.body) for r in body.requests)
    return JobSpec(
        endpoint=body.endpoint,
        model=body.model,
        agent_id=body.agent_id,
        metadata=body.metadata,
        input_files=tuple(str(f) for f in body.input_files or ()),
        requests=inline,
        timeout_hours=body.timeout_hours,
    )


class BulkSeedIn(BaseModel):
    count: Annotated[int, Field(ge=1, le=100_000)]
    endpoint: EndpointName = "/v1/chat/completions"
    model: str | None = "mistral-small-latest"
    total_requests: Annotated[int, Field(ge=1)] = 10
    metadata: dict[MetadataKey, MetadataValue] | None = None
    created_by: Literal["me", "other"] = "me"
    pad_bytes: Annotated[int, Field(ge=0, le=10_000_000)] = 0


_LIST_PARAMS = frozenset(
    {"page", "page_size", "model", "agent_id", "metadata", "created_after", "created_by_me",
     "status", "order_by"}
)  # fmt: skip


def batch_router(simulation: Simulation) -> APIRouter:
    """The ``/v1/batch/jobs`` routes (docs/mistral-api.md §1). Auth is checked by the gateway."""
    router = APIRouter()

    # jobs_api_routes_batch_get_batch_jobs
    @router.get("/v1/batch/jobs")
    async def list_jobs(
        request: Request,
        *,
        page: Annotated[int, Query(ge=0)] = 0,
        page_size: Annotated[int, Query(ge=0)] = 100,
        model: str | None = None,
        agent_id: str | None = None,
        created_after: datetime | None = None,
        created_by_me: bool = False,
        status: Annotated[list[StatusName] | None, Query()] = None,
        order_by: Literal["created", "-created"] = "-created",
    ) -> JSONResponse:
        query = SimJobQuery(
            page=page,
            page_size=page_size,
            model=model,
            agent_id=agent_id,
            created_after=None if created_after is None else _epoch_seconds(created_after),
            created_by_me=created_by_me,
            statuses=frozenset(JobStatus(s) for s in status or ()),
            metadata=_metadata_filters(request),
            order_by=order_by,
        )
        listing = simulation.list_jobs(query)
        data = [job.to_wire() for job in listing.jobs]
        return JSONResponse({"object": "list", "data": data, "total": listing.total})

    # jobs_api_routes_batch_create_batch_job: 200, not 201
    @router.post("/v1/batch/jobs")
    async def create_job(body: CreateBatchJobIn) -> JSONResponse:
        return JSONResponse(simulation.create_job(job_spec(body)).to_wire())

    # jobs_api_routes_batch_get_batch_job
    @router.get("/v1/batch/jobs/{job_id}")
    async def get_job(job_id: uuid.UUID, inline: bool | None = None) -> JSONResponse:
        return JSONResponse(simulation.get_job(str(job_id), inline=bool(inline)).to_wire())

    # jobs_api_routes_batch_cancel_batch_job: answers with the whole BatchJob
    @router.post("/v1/batch/jobs/{job_id}/cancel")
    async def cancel_job(job_id: uuid.UUID) -> JSONResponse:
        return JSONResponse(simulation.cancel_job(str(job_id)).to_wire())

    # jobs_api_routes_batch_delete_batch_job
    @router.delete("/v1/batch/jobs/{job_id}")
    async def delete_job(job_id: uuid.UUID) -> JSONResponse:
        simulation.delete_job(str(job_id))
        return JSONResponse({"id": str(job_id), "object": "batch", "deleted": True})

    return router


def _epoch_seconds(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _metadata_filters(request: Request) -> tuple[tuple[str, frozenset[str]], ...]:
    """Unknown query keys, which is how the SDK sends ``metadata={"team": "a"}``."""
    wanted: dict[str, set[str]] = {}
    for key, value in request.query_params.multi_items():
        if key not in _LIST_PARAMS:
            wanted.setdefault(key, set()).add(value)
    return tuple(sorted((key, frozenset(values)) for key, values in wanted.items()))


def control_router(simulation: Simulation) -> APIRouter:
    """``/_sim``: the shared control routes (``control``), and the seeding for benchmarks."""
    router = control.control_router(simulation)

    @router.post("/jobs/bulk")
    async def seed(body: BulkSeedIn) -> JSONResponse:
        spec = JobSpec(endpoint=body.endpoint, model=body.model, metadata=body.metadata)
        ids = simulation.seed_jobs(
            body.count, spec, body.total_requests, body.created_by, pad_bytes=body.pad_bytes
        )
        return JSONResponse({"ids": ids})

    return router
