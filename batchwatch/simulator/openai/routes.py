"""The simulator's batch routes over the ``OpenAISimulation``: ``/v1/batches`` (OpenAI's Batch
API) and the ``/_sim`` control routes (the files' are in ``files_routes``, the faults' in
``fault_injector``).

* A create body is ``CreateBatchIn``, OpenAI's ``CreateBatchRequest``: unknown fields, a
  ``completion_window`` other than ``24h``, an endpoint outside the enum (``/v1/videos``
  included: creation no longer accepts it) or metadata beyond 16 pairs of 64/512-character
  strings are 400s with OpenAI's error body (``app`` turns FastAPI's 422 into it).
* ``limit`` is 1 to 100 (default 20); ``after`` is a batch id from an earlier page.

Control routes, no auth, never faulted: ``GET /_sim/jobs/{id}/history`` (the true status
sequence), ``GET /_sim/stats`` and ``POST /_sim/stats/reset`` (``/v1`` requests per route
template), ``POST /_sim/jobs/bulk`` (``BulkSeedIn``: seed many batches at once, for
benchmarks; they read one synthetic input file).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from batchwatch.simulator import control
from batchwatch.simulator.openai.batches import BatchSpec
from batchwatch.simulator.openai.files import MAX_TTL_SECONDS, MIN_TTL_SECONDS
from batchwatch.simulator.openai.inputs import MAX_REQUESTS
from batchwatch.simulator.openai.simulation import OpenAISimulation

Endpoint = Literal[
    "/v1/responses", "/v1/chat/completions", "/v1/embeddings", "/v1/completions",
    "/v1/moderations", "/v1/images/generations", "/v1/images/edits",
]  # fmt: skip
MetadataKey = Annotated[str, StringConstraints(max_length=64)]
MetadataValue = Annotated[str, StringConstraints(max_length=512)]


class ExpiresAfterIn(BaseModel):
    """``BatchFileExpirationAfter``: when the result files expire."""

    model_config = ConfigDict(extra="forbid")
    anchor: Literal["created_at"]
    seconds: Annotated[int, Field(ge=MIN_TTL_SECONDS, le=MAX_TTL_SECONDS)]


class CreateBatchIn(BaseModel):
    """``CreateBatchRequest``."""

    model_config = ConfigDict(extra="forbid")
    input_file_id: str
    endpoint: Endpoint
    completion_window: Literal["24h"]
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=16)] | None = None
    output_expires_after: ExpiresAfterIn | None = None

    def to_spec(self) -> BatchSpec:
        expires = self.output_expires_after
        return BatchSpec(
            input_file_id=self.input_file_id,
            endpoint=self.endpoint,
            completion_window=self.completion_window,
            metadata=self.metadata,
            output_ttl_seconds=None if expires is None else expires.seconds,
        )


class BulkSeedIn(BaseModel):
    """``POST /_sim/jobs/bulk``: timings default to the settings, like the directives."""

    model_config = ConfigDict(extra="forbid")
    count: Annotated[int, Field(ge=1, le=100_000)]
    total_requests: Annotated[int, Field(ge=1, le=MAX_REQUESTS)] = 10
    outcome: Literal["completed", "failed", "expired"] = "completed"
    queue_seconds: Annotated[float, Field(ge=0)] | None = None
    run_seconds: Annotated[float, Field(ge=0)] | None = None
    failure_rate: Annotated[float, Field(ge=0, le=1)] | None = None
    endpoint: Endpoint = "/v1/chat/completions"
    pad_bytes: Annotated[int, Field(ge=0, le=10_000_000)] = 0


def batch_router(simulation: OpenAISimulation) -> APIRouter:
    """The ``/v1/batches`` routes. Auth is checked by the gateway."""
    router = APIRouter()

    # createBatch: 200 with the new Batch, status "validating"
    @router.post("/v1/batches")
    async def create_batch(body: CreateBatchIn) -> JSONResponse:
        return JSONResponse(simulation.create_batch(body.to_spec()).to_wire())

    # listBatches: newest first, cursor pagination
    @router.get("/v1/batches")
    async def list_batches(
        after: str | None = None, limit: Annotated[int, Query(ge=1, le=100)] = 20
    ) -> JSONResponse:
        return JSONResponse(simulation.list_batches(after, limit).to_wire())

    # retrieveBatch
    @router.get("/v1/batches/{batch_id}")
    async def retrieve_batch(batch_id: str) -> JSONResponse:
        return JSONResponse(simulation.get_batch(batch_id).to_wire())

    # cancelBatch: answers with the batch, "cancelling"
    @router.post("/v1/batches/{batch_id}/cancel")
    async def cancel_batch(batch_id: str) -> JSONResponse:
        return JSONResponse(simulation.cancel_batch(batch_id).to_wire())

    return router


def control_router(simulation: OpenAISimulation) -> APIRouter:
    """``/_sim``: the shared control routes (``control``), and the seeding for benchmarks."""
    router = control.control_router(simulation)

    @router.post("/jobs/bulk")
    async def seed(body: BulkSeedIn) -> JSONResponse:
        ids = simulation.seed_jobs(
            body.count,
            body.total_requests,
            body.outcome,
            queue_seconds=body.queue_seconds,
            run_seconds=body.run_seconds,
            failure_rate=body.failure_rate,
            endpoint=body.endpoint,
            pad_bytes=body.pad_bytes,
        )
        return JSONResponse({"ids": ids})

    return router
