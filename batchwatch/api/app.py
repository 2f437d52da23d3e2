"""The local HTTP API: history read back from the store, in Mistral's own shapes.

Reads never call upstream. The app depends on the store, the health state and the token,
not on the scheduler, so tests build it around a store of their own.
"""

import hmac
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    Form,
    Header,
    HTTPException,
    Query,
    Request,
    UploadFile,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic_core import to_json
from starlette.concurrency import run_in_threadpool

from batchwatch import __version__
from batchwatch.actions import Actions
from batchwatch.api.guards import (
    MAX_BODY_BYTES,
    MAX_UPLOAD_BYTES,
    BodySizeLimit,
    allow_every_method,
    database_unavailable,
)
from batchwatch.api.schemas import (
    BAD_BODY,
    COMMON_ERRORS,
    LIST_KEYS,
    METADATA_PARAMETER,
    NOT_FOUND,
    UPSTREAM_ERRORS,
    ActionListOut,
    ActionOut,
    BatchJobOut,
    DateTimeText,
    FilePurpose,
    HealthOut,
    ListBatchJobsOut,
    ProgressListOut,
    TransitionFeedOut,
    TransitionListOut,
    error_response,
    job_body,
    progress_body,
    transition_body,
)
from batchwatch.errors import ActionError, StoreUnavailable
from batchwatch.health import Health
from batchwatch.logs import get_logger, redact
from batchwatch.models import JobStatus, StatusName, StoredJob
from batchwatch.providers.mistral.client import CreateRequest
from batchwatch.providers.mistral.schemas import METADATA_KEY, PLAIN_TEXT, CreateBatchJobIn
from batchwatch.store import JobQuery, Store, intents

log = get_logger("batchwatch.api")

_METADATA_KEY = re.compile(METADATA_KEY)
_PLAIN_TEXT = re.compile(PLAIN_TEXT)
_MAX_PAGE = 2**31 - 1  # an int32, as the SDKs type it; page * page_size stays in range
_MAX_ID = 2**63 - 1  # ids are 64-bit integers in every supported database


def bearer_guard(token: str) -> Callable[[HTTPAuthorizationCredentials | None], None]:
    """The token check: refuses (401) anything but ``token``."""
    expected = token.encode()

    def check(credentials: HTTPAuthorizationCredentials | None) -> None:
        given = credentials.credentials if credentials else ""
        # Constant-time comparison: response timing must not reveal how much of a guess was
        # right.
        if not hmac.compare_digest(given.encode(), expected):
            raise HTTPException(
                status_code=401,
                detail="missing or wrong bearer token (see api.token_file)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


def bearer_dependency(token: str) -> Callable[..., Awaitable[None]]:
    """``bearer_guard`` as the routes' dependency. async: a plain function would cost every
    request a trip through the thread pool, for a check that takes a microsecond."""
    scheme = HTTPBearer(auto_error=False, description="the token from api.token_file")
    check = bearer_guard(token)

    async def guard(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(scheme)],
    ) -> None:
        check(credentials)

    return guard


def _no_such_job(job_id: uuid.UUID) -> HTTPException:
    return HTTPException(status_code=404, detail=f"no tracked job with id {job_id}")


def _job_or_404(store: Store, job_id: uuid.UUID) -> StoredJob:
    job = store.get_job(str(job_id))
    if job is None:
        raise _no_such_job(job_id)
    return job


_T = TypeVar("_T")
#: A read of at most this many rows runs on the event loop (see ``_read``).
INLINE_ROWS = 100


async def _read(store: Store, call: Callable[[], _T], rows: int = 1) -> _T:
    """Run a store read. An indexed SQLite read of a few rows takes well under a
    millisecond, less than the hand-off to a worker thread and back that a plain route pays
    (the thread pool was most of a single-job read's time), so it runs right here on the
    event loop; a bigger read, or any read over the network (PostgreSQL), goes to a worker
    thread so it does not hold up the other requests."""
    if store.is_sqlite and rows <= INLINE_ROWS:
        return call()
    return await run_in_threadpool(call)


def _json(body: object) -> Response:
    """The JSON FastAPI would write for the route's ``response_model`` (same bytes, same
    media type), from a body built by ``api_models.*_body``: the read routes skip the
    model's validation, which only re-checks what the store just read."""
    return Response(to_json(body, inf_nan_mode="null"), media_type="application/json")


JobId = Annotated[uuid.UUID, "a Mistral batch job id (a UUID)"]


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
        order_by: Literal["created", "-created"] = "-created",
    ) -> Response:
        """Tracked jobs in Mistral's list shape, read from the database."""
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
        )
        found, total = await _read(store, lambda: store.list_jobs(query), page_size)
        return _json({"object": "list", "data": [job_body(j) for j in found], "total": total})

    @router.get(
        "/batch/jobs/{job_id}",
        response_model=BatchJobOut,
        summary="Get a tracked job",
        responses=NOT_FOUND,
    )
    async def get_job(job_id: JobId, inline: bool | None = None) -> Response:
        """The latest recorded snapshot of the job (``inline`` is accepted and ignored)."""
        del inline
        job = await _read(store, lambda: store.get_job(str(job_id)))
        if job is None:
            raise _no_such_job(job_id)
        return _json(job_body(job))

    @router.get(
        "/batch/jobs/{job_id}/transitions",
        response_model=TransitionListOut,
        summary="A job's status transitions, oldest first",
        responses=NOT_FOUND,
    )
    async def job_transitions(job_id: JobId) -> Response:
        found = await _read(store, lambda: store.transitions(str(job_id)))
        # A job's transitions exist only with the job (a foreign key): none, and only then,
        # asks whether the job does.
        if not found and not await _read(store, lambda: store.has_job(str(job_id))):
            raise _no_such_job(job_id)
        rows = [transition_body(t) for t in found]
        return _json({"object": "list", "data": rows, "total": len(rows)})

    @router.get(
        "/batch/jobs/{job_id}/progress",
        response_model=ProgressListOut,
        summary="A job's progress samples, oldest first",
        responses=NOT_FOUND,
    )
    async def job_progress(job_id: JobId) -> Response:
        found = await _read(store, lambda: store.progress(str(job_id)))
        if not found and not await _read(store, lambda: store.has_job(str(job_id))):
            raise _no_such_job(job_id)
        rows = [progress_body(p) for p in found]
        return _json({"object": "list", "data": rows, "total": len(rows)})

    @router.get(
        "/transitions",
        response_model=TransitionFeedOut,
        summary="Every transition in the order recorded",
    )
    async def transition_feed(
        after: Annotated[int, Query(ge=0, le=_MAX_ID, description="the last id already read")] = 0,
        limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    ) -> Response:
        found = await _read(store, lambda: store.feed(after, limit), limit)
        rows = [transition_body(t) for t in found]
        return _json(
            {"object": "list", "data": rows, "next_cursor": rows[-1]["id"] if rows else after}
        )

    return router


_CLIENT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


def _requested_by(value: str | None) -> str:
    """Who asked, from the X-Batchwatch-Client header (the CLI says "cli")."""
    return value if value and _CLIENT_NAME.match(value) else "api"


def _act(call: Callable[[], StoredJob]) -> BatchJobOut:
    try:
        return BatchJobOut.of(call())
    except ActionError as exc:
        raise _refused(exc) from None


def _refused(exc: ActionError) -> HTTPException:
    # Mistral's words pass through; a secret must not, whatever Mistral echoes back.
    return HTTPException(status_code=exc.status_code, detail=redact(exc.detail))


def action_router(actions: Actions) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["actions"], responses=COMMON_ERRORS)
    client_header = Header(alias="X-Batchwatch-Client", description="who is asking (cli, ...)")

    @router.post(
        "/batch/jobs",
        response_model=BatchJobOut,
        summary="Create a job (once)",
        responses={
            **BAD_BODY,
            **UPSTREAM_ERRORS,
            409: error_response("Idempotency-Key reused with another body"),
        },
    )
    def create_job(
        body: CreateBatchJobIn,
        idempotency_key: Annotated[
            str | None, Header(alias="Idempotency-Key", max_length=255)
        ] = None,
        client: Annotated[str | None, client_header] = None,
    ) -> BatchJobOut:
        """Mistral's create, forwarded; the job is recorded and tracked before the answer.
        The same ``Idempotency-Key`` always returns the same job, never a second one."""
        request = CreateRequest(
            endpoint=body.endpoint,
            model=body.model,
            agent_id=body.agent_id,
            input_files=tuple(str(f) for f in body.input_files or ()),
            requests=tuple(r.model_dump(exclude_none=True) for r in body.requests or ()),
            metadata=body.metadata,
            timeout_hours=body.timeout_hours,
        )
        return _act(lambda: actions.create(request, idempotency_key, _requested_by(client)))

    @router.post(
        "/batch/jobs/{job_id}/cancel",
        response_model=BatchJobOut,
        summary="Request a job's cancellation",
        responses={**UPSTREAM_ERRORS, **NOT_FOUND, 409: error_response("the job already ended")},
    )
    def cancel_job(
        job_id: JobId, client: Annotated[str | None, client_header] = None
    ) -> BatchJobOut:
        return _act(lambda: actions.cancel(str(job_id), _requested_by(client)))

    @router.post(
        "/batch/jobs/{job_id}/track",
        response_model=BatchJobOut,
        summary="Start tracking an existing job",
        responses={**UPSTREAM_ERRORS, **NOT_FOUND},
    )
    def track_job(
        job_id: JobId, client: Annotated[str | None, client_header] = None
    ) -> BatchJobOut:
        return _act(lambda: actions.track(str(job_id), _requested_by(client)))

    @router.post(
        "/files",
        summary="Upload a file to Mistral (relayed)",
        description=f"The body may be up to {MAX_UPLOAD_BYTES} bytes (Mistral's limit).",
        responses={**BAD_BODY, **UPSTREAM_ERRORS},
    )
    def upload_file(
        file: UploadFile, purpose: Annotated[FilePurpose, Form()] = "batch"
    ) -> dict[str, Any]:
        """Mistral's upload, relayed, so `batchwatch submit` needs only the daemon."""
        content = file.file.read()
        try:
            return actions.upload(file.filename or "upload.jsonl", content, purpose or "batch")
        except ActionError as exc:
            raise _refused(exc) from None

    @router.get(
        "/batch/jobs/{job_id}/actions",
        response_model=ActionListOut,
        summary="Who created, cancelled or tracked a job, and when",
        responses=NOT_FOUND,
    )
    def job_actions(job_id: JobId) -> ActionListOut:
        _job_or_404(actions.store, job_id)
        rows = [ActionOut.of(a) for a in intents.job_actions(actions.store, str(job_id))]
        return ActionListOut(data=rows, total=len(rows))

    return router


def create_app(
    store: Store,
    health: Health,
    token: str,
    actions: Actions | None = None,
) -> FastAPI:
    app = FastAPI(
        title="batchwatch",
        version=__version__,
        description="History of Mistral batch jobs, served in Mistral's own API shape.",
    )
    app.add_middleware(
        BodySizeLimit,
        default=MAX_BODY_BYTES,
        per_route={("POST", "/v1/files"): MAX_UPLOAD_BYTES},
    )
    app.add_exception_handler(StoreUnavailable, database_unavailable)
    app.add_exception_handler(405, allow_every_method(app))
    guard = Depends(bearer_dependency(token))
    app.include_router(read_router(store), dependencies=[guard])
    if actions is not None:
        app.include_router(action_router(actions), dependencies=[guard])

    @app.get(
        "/healthz",
        response_model=HealthOut,
        tags=["service"],
        responses={
            413: COMMON_ERRORS[413],
            503: {"model": HealthOut, "description": "degraded (the reasons say why)"},
        },
    )
    def healthz() -> JSONResponse:
        snap = health.snapshot(datetime.now(UTC))
        body = snap.to_json()
        try:
            body["jobs_by_status"] = store.count_by_status()
        except StoreUnavailable as exc:  # the database being down is itself a health fact
            body["status"] = "degraded"
            body["reasons"] = [*body["reasons"], redact(str(exc))]
        except Exception as exc:
            body["status"] = "degraded"
            body["reasons"] = [*body["reasons"], f"database unavailable: {type(exc).__name__}"]
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    return app
