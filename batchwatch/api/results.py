"""The results routes: where fetching a job's results stands, the ledger of its requests, a
retry of what did not succeed, Mistral's delete, and token usage with its cost."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from batchwatch.api.actions import Client, IdempotencyKey, act_on, refused, requested_by
from batchwatch.api.reads import JobId, no_such_job
from batchwatch.api.schemas import (
    COMMON_ERRORS,
    NOT_FOUND,
    UPSTREAM_ERRORS,
    BatchJobOut,
    DateTimeText,
    error_response,
)
from batchwatch.config import PriceSettings
from batchwatch.errors import ActionError
from batchwatch.models import JobResults, Outcome, ResultsState, StoredJob
from batchwatch.providers.mistral.schemas import METADATA_KEY
from batchwatch.results.actions import RETRYABLE, ResultsActions
from batchwatch.store import Store, ledger
from batchwatch.store import results as stored

OutcomeName = Literal["succeeded", "failed", "not_run"]


class RetryIn(BaseModel):
    only: list[OutcomeName] = Field(
        default=["failed", "not_run"], min_length=1, description="the outcomes to run again"
    )


class DeletedOut(BaseModel):
    """Mistral's answer to a delete."""

    id: str
    object: Literal["batch"] = "batch"
    deleted: bool


def results_body(job: StoredJob, found: JobResults | None, queued: bool) -> dict[str, Any]:
    """``GET .../results``: the row, or what a job without one is waiting for (``queued``:
    it ended and the results worker is about to take it)."""
    body: dict[str, Any] = {"job_id": job.id, "files": [], "counts": None, "usage": None}
    if found is None:
        missing = job.status.is_terminal and not queued
        body["state"] = (ResultsState.UNAVAILABLE if missing else ResultsState.PENDING).value
        if not job.status.is_terminal:
            body["reason"] = f"the job has not ended: it is {job.status.value}"
        elif missing:
            body["reason"] = "the job ended before batchwatch kept results"
        else:
            body["reason"] = "the job ended: its results are queued"
        return body
    body |= {
        "state": found.state.value,
        "reason": found.reason,
        "attempts": found.attempts,
        "files": [
            {
                "kind": f.kind,
                "file_id": f.file_id,
                "bytes": f.bytes,
                "sha256": f.sha256,
                "path": f.path,
            }
            for f in found.files
        ],
    }
    if found.counts is not None and found.usage is not None:
        c, u = found.counts, found.usage
        body["counts"] = {
            "total": c.total,
            "succeeded": c.succeeded,
            "failed": c.failed,
            "not_run": c.not_run,
        }
        body["usage"] = {
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens,
        }
    return body


def results_router(
    store: Store, actions: ResultsActions | None, prices: dict[str, PriceSettings]
) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["results"], responses=COMMON_ERRORS)
    _read_routes(router, store, prices)
    if actions is not None:
        _action_routes(router, actions)
    return router


def _read_routes(router: APIRouter, store: Store, prices: dict[str, PriceSettings]) -> None:
    @router.get("/batch/jobs/{job_id}/results", summary="A job's results", responses=NOT_FOUND)
    def job_results(job_id: JobId) -> dict[str, Any]:
        job = store.get_job(job_id)
        if job is None:
            raise no_such_job(job_id)
        found = stored.job_results(store, job_id)
        queued = found is None and stored.queued_soon(store, job_id)
        if found is None and not queued:
            # The scan inserts the row and moves the cursor past the job in one transaction:
            # a cursor past it, read after the row was missing, means the row came between
            # the two reads. Read it again rather than call the results missing.
            found = stored.job_results(store, job_id)
        return results_body(job, found, queued)

    @router.get(
        "/batch/jobs/{job_id}/requests",
        summary="The ledger: one row per request of the job",
        responses=NOT_FOUND,
    )
    def job_requests(
        job_id: JobId,
        outcome: Annotated[list[OutcomeName] | None, Query()] = None,
        page: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
        page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        wanted = [Outcome(o) for o in outcome or ()]
        rows, total = ledger.ledger_page(store, job_id, wanted, page, page_size)
        # Rows exist only for a tracked job: none, and only then, asks whether it is one.
        if not total and not store.has_job(job_id):
            raise no_such_job(job_id)
        # The rows come as JSON from the database (``store.ledger.ledger_page``).
        body = f'{{"object":"list","data":{rows},"total":{total}}}'
        return Response(body, media_type="application/json")

    @router.get("/usage", summary="Token totals (and cost, with prices configured)")
    def usage(
        since: DateTimeText | None = None,
        group_by: Annotated[str, Query(pattern=rf"^(model|metadata\.{METADATA_KEY[1:-1]})$")]
        | None = None,
    ) -> dict[str, Any]:
        key = group_by.removeprefix("metadata.") if group_by and group_by != "model" else None
        after = since.replace(tzinfo=since.tzinfo or UTC) if since else None
        rows = stored.usage(store, after, key)
        return {"object": "list", "data": usage_groups(rows, prices)}


def usage_groups(
    rows: Sequence[tuple[str | None, str | None, int, int, int, int, int]],
    prices: dict[str, PriceSettings],
) -> list[dict[str, Any]]:
    """Rows by (group, model) folded into groups; a group's cost is known only when every
    model in it has a price."""
    groups: dict[str | None, dict[str, Any]] = {}
    for group, model, jobs, requests, prompt, completion, total in rows:
        g = groups.setdefault(
            group,
            {
                "key": group,
                "jobs": 0,
                "requests": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "total_tokens": 0,
                "cost": 0.0,
            },
        )
        g["jobs"] += jobs
        g["requests"] += requests
        g["prompt_tokens"] += prompt
        g["completion_tokens"] += completion
        g["total_tokens"] += total
        price = prices.get(model or "")
        if price is None or g["cost"] is None:
            g["cost"] = None
        else:
            list_cost = prompt * price.input_per_million + completion * price.output_per_million
            g["cost"] += list_cost / 1e6 * (1 - price.batch_discount)
    return list(groups.values())


def _action_routes(router: APIRouter, actions: ResultsActions) -> None:
    @router.post(
        "/batch/jobs/{job_id}/retry",
        response_model=BatchJobOut,
        summary="Run the requests that did not succeed again, as a child job",
        responses={**UPSTREAM_ERRORS, **NOT_FOUND, 409: error_response("nothing to retry")},
    )
    def retry_job(
        job_id: JobId,
        body: Annotated[RetryIn | None, Body()] = None,
        idempotency_key: IdempotencyKey = None,
        client: Client = None,
    ) -> dict[str, Any]:
        only = [Outcome(o) for o in (body.only if body else [o.value for o in RETRYABLE])]
        by = requested_by(client)
        return act_on(lambda: actions.retry(job_id, only, idempotency_key, by))

    @router.delete(
        "/batch/jobs/{job_id}",
        response_model=DeletedOut,
        summary="Delete a job upstream (its history and files stay here)",
        responses={**UPSTREAM_ERRORS, **NOT_FOUND, 409: error_response("not ended, or not safe")},
    )
    def delete_job(job_id: JobId, force: bool = False, client: Client = None) -> DeletedOut:
        try:
            deleted = actions.delete(job_id, force=force, requested_by=requested_by(client))
        except ActionError as exc:
            if exc.status_code == 404:
                raise HTTPException(status_code=404, detail=exc.detail) from None
            raise refused(exc) from None
        return DeletedOut(id=job_id, deleted=deleted)
