"""The simulator's HTTP routes over the ``AnthropicSimulation``: the Message Batches API
under ``/v1/messages/batches`` and the ``/_sim`` control routes (the faults' are
``fault_injector.faults_router``). Auth and the ``anthropic-version`` header are checked by
the gateway (``app``) before any of these run.

Control routes, no auth, never faulted:

* ``GET /_sim/stats`` → ``{"total": n, "requests": {"GET /v1/messages/batches": n, ...}}``
  (``/v1`` requests per route template, those answered by a fault included);
  ``POST /_sim/stats/reset`` clears them and the request log.
* ``GET /_sim/jobs/{id}/history`` → ``{"job_id", "statuses": [{"status", "at"}]}``: the true
  status sequence so far, ``at`` in epoch seconds.
* ``POST /_sim/jobs/bulk`` ``{count (1..100000), total_requests, outcome, queue_seconds?,
  run_seconds?, failure_rate?}`` → ``{"ids": [...]}``: ``seed_jobs`` over HTTP.
* ``GET``/``POST /_sim/quirks`` ``{"hidden_gets": n}``: how many retrieves of each batch
  created from then on answer 404 first (the "404 right after create" quirk; default 0).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from batchwatch.simulator import control
from batchwatch.simulator.anthropic.batches import BATCHES, ONE_BATCH, BatchRequest
from batchwatch.simulator.anthropic.results import MEDIA_TYPE
from batchwatch.simulator.anthropic.schemas import BulkSeedIn, CreateBatchIn, QuirksIn
from batchwatch.simulator.anthropic.simulation import AnthropicSimulation


def _base_url(request: Request) -> str:
    """``http://host:port`` as the client called it: where ``results_url`` points."""
    return str(request.base_url).rstrip("/")


def batch_router(simulation: AnthropicSimulation) -> APIRouter:
    """The Message Batches API (docs.anthropic.com, "Message Batches")."""
    router = APIRouter()

    # message_batches_post: "Create a Message Batch" (200, not 201)
    @router.post(BATCHES)
    async def create_batch(body: CreateBatchIn, request: Request) -> JSONResponse:
        requests = [BatchRequest(r.custom_id, r.params.model) for r in body.requests]
        view = simulation.create_batch(requests, body.user_id)
        return JSONResponse(view.to_wire(_base_url(request)))

    # message_batches_list: "List Message Batches", newest first, cursor-paged
    @router.get(BATCHES)
    async def list_batches(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=1000)] = 20,
        after_id: str | None = None,
        before_id: str | None = None,
    ) -> JSONResponse:
        page = simulation.list_batches(limit, after_id=after_id, before_id=before_id)
        base = _base_url(request)
        data = [view.to_wire(base) for view in page.batches]
        first = data[0]["id"] if data else None
        last = data[-1]["id"] if data else None
        return JSONResponse(
            {"data": data, "has_more": page.has_more, "first_id": first, "last_id": last}
        )

    # message_batches_retrieve: "Retrieve a Message Batch"
    @router.get(ONE_BATCH)
    async def retrieve_batch(message_batch_id: str, request: Request) -> JSONResponse:
        view = simulation.get_batch(message_batch_id)
        return JSONResponse(view.to_wire(_base_url(request)))

    # message_batches_cancel: "Cancel a Message Batch" (answers with the batch)
    @router.post(ONE_BATCH + "/cancel")
    async def cancel_batch(message_batch_id: str, request: Request) -> JSONResponse:
        view = simulation.cancel_batch(message_batch_id)
        return JSONResponse(view.to_wire(_base_url(request)))

    # message_batches_delete: "Delete a Message Batch" (ended batches only)
    @router.delete(ONE_BATCH)
    async def delete_batch(message_batch_id: str) -> JSONResponse:
        simulation.delete_batch(message_batch_id)
        return JSONResponse({"id": message_batch_id, "type": "message_batch_deleted"})

    # message_batches_results: "Retrieve Message Batch results", streamed JSONL
    @router.get(ONE_BATCH + "/results")
    async def batch_results(message_batch_id: str) -> StreamingResponse:
        return StreamingResponse(simulation.results(message_batch_id), media_type=MEDIA_TYPE)

    return router


def control_router(simulation: AnthropicSimulation) -> APIRouter:
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
        )
        return JSONResponse({"ids": ids})

    @router.get("/quirks")
    async def quirks() -> JSONResponse:
        return JSONResponse({"hidden_gets": simulation.hidden_gets})

    @router.post("/quirks")
    async def set_quirks(body: QuirksIn) -> JSONResponse:
        simulation.set_hidden_gets(body.hidden_gets)
        return JSONResponse({"hidden_gets": simulation.hidden_gets})

    return router
