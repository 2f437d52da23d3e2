"""The history routes: jobs, transitions and progress read back from the store, never from
upstream, in Mistral's shapes where Mistral has one."""

import re
from collections.abc import Callable
from datetime import UTC
from typing import Annotated, TypeVar

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import AfterValidator
from pydantic_core import to_json
from starlette.concurrency import run_in_threadpool

from batchwatch.api.schemas import (
    COMMON_ERRORS,
    LIST_KEYS,
    METADATA_PARAMETER,
    NOT_FOUND,
    BatchJobOut,
    DateTimeText,
    ListBatchJobsOut,
    ProgressListOut,
    ProviderName,
    TransitionFeedOut,
    TransitionListOut,
    job_body,
    progress_body,
    transition_body,
)
from batchwatch.models import JobStatus, StatusName
from batchwatch.providers import PROVIDERS, provider, provider_of_id
from batchwatch.providers.mistral.schemas import METADATA_KEY, PLAIN_TEXT, OrderBy
from batchwatch.store import JobQuery, Store

_METADATA_KEY = re.compile(METADATA_KEY)
_PLAIN_TEXT = re.compile(PLAIN_TEXT)
_MAX_PAGE = 2**31 - 1  # an int32, as the SDKs type it; page * page_size stays in range
_MAX_ID = 2**63 - 1  # ids are 64-bit integers in every supported database

#: Any provider's job id, as the catalog describes them (a UUID, ``batch_…``, ``msgbatch_…``):
#: anything else is refused (422) before the database is asked.
JOB_ID_PATTERN = "^(?:" + "|".join(provider(name).id_pattern for name in PROVIDERS) + ")$"


def _canonical(job_id: str) -> str:
    # Mistral's ids are stored in lower case; an upper-case UUID names the same job (the
    # route took a ``uuid.UUID`` before providers, which read it so).
    return job_id.lower() if provider_of_id(job_id) == "mistral" else job_id


JobId = Annotated[
    str,
    Path(
        pattern=JOB_ID_PATTERN,
        max_length=128,
        description="a job id of any provider: Mistral's UUID, OpenAI's batch_…, "
        "Anthropic's msgbatch_…",
    ),
    AfterValidator(_canonical),
]


def no_such_job(job_id: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"no tracked job with id {job_id}")


_T = TypeVar("_T")
#: A read of at most this many rows runs on the event loop (see ``read``). Figure 7
#: (``python -m tests.benchmarks.discovery``: 2 clients reading transitions, 2 reading
#: 100-job pages): with the pages on the loop too (at 100), the transitions p99 was 36.9 ms;
#: with the pages in a worker thread, 12.1 ms.
INLINE_ROWS = 10


async def read(store: Store, call: Callable[[], _T], rows: int = 1) -> _T:
    """Run a store read. An indexed SQLite read of a few rows takes well under a
    millisecond, less than the hand-off to a worker thread and back that a plain route pays
    (the thread pool was most of a single-job read's time), so it runs right here on the
    event loop; a bigger read, or any read over the network (PostgreSQL), goes to a worker
    thread so it does not hold up the other requests."""
    if store.is_sqlite and rows <= INLINE_ROWS:
        return call()
    return await run_in_threadpool(call)


def json_response(body: object) -> Response:
    """The JSON FastAPI would write for the route's ``response_model`` (same bytes, same
    media type), from a body built by ``job_body`` or ``schemas.*_body``: the read
    routes skip the model's validation, which only re-checks what the store just read."""
    # Measured, back to back (`python -m tests.benchmarks.run --only reads`): through the
    # validation, single-job reads fell from 1454-1594 to 1025-1057 req/s and the status
    # page's p99 missed its 20 ms (103.8 ms, against 19.95 with this); a 100-job page
    # costs 13.1 ms instead of 10.2 ms in process.
    return Response(to_json(body, inf_nan_mode="null"), media_type="application/json")


def _metadata_filter(request: Request) -> dict[str, str]:
    """The query keys that are not list parameters: a metadata filter, checked here because
    a key is also a JSON path step in the database query (a quote would break it)."""
    found: dict[str, str] = {}
    errors: list[dict[str, object]] = []
    for key, value in request.query_params.multi_items():
        if key in LIST_KEYS:
            continue
        if len(key) > 32 or not _METADATA_KEY.match(key):
            msg = "a metadata key is 1 to 32 characters, with no quote, backslash or control"
        elif not _PLAIN_TEXT.match(value):
            msg = "a metadata value has no control characters"
        else:
            found[key] = value
            continue
        errors.append({"type": "value_error", "loc": ("query", key), "msg": msg, "input": value})
    if errors:
        raise RequestValidationError(errors)
    return found


def read_router(store: Store) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["history"], responses=COMMON_ERRORS)
    _job_routes(router, store)
    _history_routes(router, store)
    return router


def _job_routes(router: APIRouter, store: Store) -> None:
    """Mistral's list and get, answered from the latest recorded snapshots."""

    @router.get(
        "/batch/jobs",
        response_model=ListBatchJobsOut,
        summary="List tracked jobs",
        openapi_extra={"parameters": [METADATA_PARAMETER]},
    )
    async def list_jobs(
        request: Request,
        *,
        page: Annotated[int, Query(ge=0, le=_MAX_PAGE)] = 0,
        page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
        model: Annotated[str | None, Query(pattern=PLAIN_TEXT)] = None,
        status: Annotated[list[StatusName] | None, Query()] = None,
        created_after: DateTimeText | None = None,
        created_by_me: bool = False,
        order_by: OrderBy = "-created",
        provider: ProviderName | None = None,
    ) -> Response:
        """Tracked jobs in Mistral's list shape, read from the database; ``provider``
        keeps one provider's."""
        del created_by_me  # every tracked job is listed: batchwatch has one identity upstream
        metadata = _metadata_filter(request)
        after = created_after.replace(tzinfo=created_after.tzinfo or UTC) if created_after else None
        query = JobQuery(
            statuses=tuple(JobStatus(s) for s in status or ()),
            model=model,
            created_after=int(after.timestamp()) if after else None,
            metadata=metadata,
            newest_first=order_by == "-created",
            page=page,
            page_size=page_size,
            provider=provider,
        )

        def page_body() -> dict[str, object]:
            found, total = store.list_jobs(query)
            return {
                "object": "list",
                "data": [job_body(j.remote) for j in found],
                "total": total,
            }

        return json_response(await read(store, page_body, page_size))

    @router.get(
        "/batch/jobs/{job_id}",
        response_model=BatchJobOut,
        summary="Get a tracked job",
        responses=NOT_FOUND,
    )
    async def get_job(job_id: JobId, inline: bool | None = None) -> Response:
        """The latest recorded snapshot of the job (``inline`` is accepted and ignored)."""
        del inline
        job = await read(store, lambda: store.get_job(job_id))
        if job is None:
            raise no_such_job(job_id)
        return json_response(job_body(job.remote))


def _history_routes(router: APIRouter, store: Store) -> None:
    """batchwatch's own routes: what changed, and when."""

    @router.get(
        "/batch/jobs/{job_id}/transitions",
        response_model=TransitionListOut,
        summary="A job's status transitions, oldest first",
        responses=NOT_FOUND,
    )
    async def job_transitions(job_id: JobId) -> Response:
        found = await read(store, lambda: store.transitions(job_id))
        # A job's transitions exist only with the job (a foreign key): none, and only then,
        # asks whether the job does.
        if not found and not await read(store, lambda: store.has_job(job_id)):
            raise no_such_job(job_id)
        rows = [transition_body(t) for t in found]
        return json_response({"object": "list", "data": rows, "total": len(rows)})

    @router.get(
        "/batch/jobs/{job_id}/progress",
        response_model=ProgressListOut,
        summary="A job's progress samples, oldest first",
        responses=NOT_FOUND,
    )
    async def job_progress(job_id: JobId) -> Response:
        found = await read(store, lambda: store.progress(job_id))
        if not found and not await read(store, lambda: store.has_job(job_id)):
            raise no_such_job(job_id)
        rows = [progress_body(p) for p in found]
        return json_response({"object": "list", "data": rows, "total": len(rows)})

    @router.get(
        "/transitions",
        response_model=TransitionFeedOut,
        summary="Every transition in the order recorded",
    )
    async def transition_feed(
        after: Annotated[int, Query(ge=0, le=_MAX_ID, description="the last id already read")] = 0,
        limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    ) -> Response:
        found = await read(store, lambda: store.feed(after, limit), limit)
        rows = [transition_body(t) for t in found]
        return json_response(
            {"object": "list", "data": rows, "next_cursor": rows[-1]["id"] if rows else after}
        )
