"""Anthropic's Message Batches API, served by the daemon under ``/anthropic`` in Anthropic's
own shapes, so that ``Anthropic(base_url=DAEMON + "/anthropic", api_key=TOKEN)`` works:
batches are read from the store (rendered by ``providers.anthropic.wire.batch_to_json``),
created and cancelled through ``Actions``; results are the downloaded file once the
results worker has it, else streamed from Anthropic."""

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, Response

from batchwatch.actions import Actions
from batchwatch.api.actions import Client, IdempotencyKey, requested_by
from batchwatch.api.native import NativeJobs
from batchwatch.api.native_errors import ANTHROPIC_ERRORS
from batchwatch.models import RemoteJob, ResultsState
from batchwatch.providers.anthropic.schemas import CreateMessageBatchIn
from batchwatch.providers.anthropic.wire import PROVIDER, batch_to_json
from batchwatch.results.files import kept_file
from batchwatch.store import Store
from batchwatch.store import results as stored_results

PREFIX = "/anthropic/v1/messages/batches"
#: The route name of the results, from which each batch's ``results_url`` is made.
RESULTS_ROUTE = "anthropic_batch_results"
JSONL = "application/x-jsonl"
_Cursor = Annotated[str | None, Query(max_length=128)]


def anthropic_router(actions: Actions, results_dir: Path | None) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["anthropic"], responses=ANTHROPIC_ERRORS)
    jobs = NativeJobs(actions, PROVIDER)
    _batch_routes(router, jobs)
    _results_route(router, jobs, results_dir)
    return router


def _json(request: Request, job: RemoteJob) -> dict[str, Any]:
    """The batch as Anthropic's ``MessageBatch``, its ``results_url`` pointing here (as the
    caller reached the daemon), so the SDK's ``results()`` reads them through batchwatch."""
    return batch_to_json(job, str(request.url_for(RESULTS_ROUTE, batch_id=job.id)))


def _batch_routes(router: APIRouter, jobs: NativeJobs) -> None:
    @router.post("", summary="Create a message batch (once per Idempotency-Key)")
    def create_batch(
        request: Request,
        body: CreateMessageBatchIn,
        idempotency_key: IdempotencyKey = None,
        client: Client = None,
    ) -> dict[str, Any]:
        """Anthropic: create a message batch (POST /v1/messages/batches); recorded before
        the answer, and the same ``Idempotency-Key`` always answers the same batch."""
        return _json(request, jobs.create(body, idempotency_key, requested_by(client)))

    @router.get("", summary="Tracked message batches, newest first")
    def list_batches(
        request: Request,
        before_id: _Cursor = None,
        after_id: _Cursor = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    ) -> dict[str, Any]:
        """Anthropic: list message batches (GET /v1/messages/batches), from the store."""
        if before_id is not None and after_id is not None:
            raise HTTPException(400, "give before_id or after_id, not both")
        page = jobs.page(limit, after=after_id, before=before_id)
        data = [_json(request, job) for job in page.jobs]
        return {
            "data": data,
            "has_more": page.has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }

    @router.get("/{batch_id}", summary="A message batch, as last recorded")
    def retrieve_batch(request: Request, batch_id: str, client: Client = None) -> dict[str, Any]:
        """Anthropic: retrieve a message batch (GET /v1/messages/batches/{id}), from the
        store; a batch not tracked yet is read from Anthropic and tracked from then on."""
        return _json(request, jobs.get(batch_id, requested_by(client)))

    @router.post("/{batch_id}/cancel", summary="Request a message batch's cancellation")
    def cancel_batch(request: Request, batch_id: str, client: Client = None) -> dict[str, Any]:
        """Anthropic: cancel a message batch (POST /v1/messages/batches/{id}/cancel)."""
        return _json(request, jobs.cancel(batch_id, requested_by(client)))


def _results_route(router: APIRouter, jobs: NativeJobs, results_dir: Path | None) -> None:
    @router.get(
        "/{batch_id}/results",
        name=RESULTS_ROUTE,
        summary="A message batch's results (JSONL)",
        response_class=Response,
    )
    def batch_results(batch_id: str, client: Client = None) -> Response:
        """Anthropic: retrieve message batch results (GET /v1/messages/batches/{id}/results):
        the downloaded file when it is ready, else streamed from Anthropic."""
        job = jobs.get(batch_id, requested_by(client))
        if job.raw_status != "ended":
            raise HTTPException(
                400, f"batch {batch_id} has not ended ({job.raw_status}): no results yet"
            )
        path = downloaded_results(jobs.actions.store, results_dir, job)
        if path is not None:
            return FileResponse(path, media_type=JSONL)
        return jobs.stream(job.id, JSONL)


def downloaded_results(store: Store, results_dir: Path | None, job: RemoteJob) -> Path | None:
    """The batch's results as the results worker downloaded them (Anthropic's JSONL, byte
    for byte), when they are ready and still on disk; None otherwise."""
    found = stored_results.job_results(store, job.id) if results_dir is not None else None
    if results_dir is None or found is None or found.state is not ResultsState.READY:
        return None
    output = next((f for f in found.files if f.kind == "output"), None)
    return kept_file(output.path, results_dir) if output is not None else None
