"""The local HTTP API: history read back from the store, in Mistral's own shapes.

Reads never call upstream. The app depends on the store, the health state and the token,
not on the scheduler, so tests build it around a store of their own.
"""

import hmac
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

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
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from batchwatch import __version__, intents
from batchwatch.actions import ActionError, Actions
from batchwatch.api_models import (
    ActionListOut,
    ActionOut,
    BatchJobOut,
    CreateBatchJobIn,
    ErrorOut,
    HealthOut,
    ListBatchJobsOut,
    ProgressListOut,
    ProgressOut,
    TransitionFeedOut,
    TransitionListOut,
    TransitionOut,
)
from batchwatch.client import CreateRequest
from batchwatch.health import Health
from batchwatch.models import MISTRAL_STATUSES, JobStatus, StoredJob
from batchwatch.store import JobQuery, Store

# Query keys Mistral's list defines; any other key is a flattened metadata filter, which is
# how the official SDKs send ``metadata={...}``.
_LIST_KEYS = frozenset(
    {
        "page",
        "page_size",
        "model",
        "agent_id",
        "metadata",
        "created_after",
        "created_by_me",
        "status",
        "order_by",
    }
)
_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut, "description": "missing or wrong bearer token"},
    404: {"model": ErrorOut, "description": "no tracked job with this id"},
    422: {"model": ErrorOut, "description": "a malformed parameter; detail names it"},
}

StatusName = Literal[
    "QUEUED",
    "RUNNING",
    "SUCCESS",
    "FAILED",
    "TIMEOUT_EXCEEDED",
    "CANCELLATION_REQUESTED",
    "CANCELLED",
]
assert set(StatusName.__args__) == {s.value for s in MISTRAL_STATUSES}  # type: ignore[attr-defined]


def bearer_guard(token: str) -> Callable[..., None]:
    scheme = HTTPBearer(auto_error=False, description="the token from api.token_file")

    def check(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(scheme)],
    ) -> None:
        given = credentials.credentials if credentials else ""
        # Constant-time comparison: response timing must not reveal how much of a guess was
        # right.
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                status_code=401,
                detail="missing or wrong bearer token (see api.token_file)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


def _job_or_404(store: Store, job_id: uuid.UUID) -> StoredJob:
    job = store.get_job(str(job_id))
    if job is None:
        raise HTTPException(status_code=404, detail=f"no tracked job with id {job_id}")
    return job


JobId = Annotated[uuid.UUID, "a Mistral batch job id (a UUID)"]


def read_router(store: Store) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["history"], responses=_ERRORS)

    @router.get("/batch/jobs", response_model=ListBatchJobsOut, summary="List tracked jobs")
    def list_jobs(
        request: Request,
        *,
        page: Annotated[int, Query(ge=0)] = 0,
        page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
        model: str | None = None,
        status: Annotated[list[StatusName] | None, Query()] = None,
        created_after: datetime | None = None,
        created_by_me: bool = False,
        order_by: Literal["created", "-created"] = "-created",
    ) -> ListBatchJobsOut:
        """Tracked jobs in Mistral's list shape, read from the database."""
        del created_by_me  # every tracked job is listed: batchwatch has one identity upstream
        metadata = {k: v for k, v in request.query_params.items() if k not in _LIST_KEYS}
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
        found, total = store.list_jobs(query)
        return ListBatchJobsOut(data=[BatchJobOut.of(j) for j in found], total=total)

    @router.get("/batch/jobs/{job_id}", response_model=BatchJobOut, summary="Get a tracked job")
    def get_job(job_id: JobId, inline: bool | None = None) -> BatchJobOut:
        """The latest recorded snapshot of the job (``inline`` is accepted and ignored)."""
        del inline
        return BatchJobOut.of(_job_or_404(store, job_id))

    @router.get(
        "/batch/jobs/{job_id}/transitions",
        response_model=TransitionListOut,
        summary="A job's status transitions, oldest first",
    )
    def job_transitions(job_id: JobId) -> TransitionListOut:
        _job_or_404(store, job_id)
        rows = [TransitionOut.of(t) for t in store.transitions(str(job_id))]
        return TransitionListOut(data=rows, total=len(rows))

    @router.get(
        "/batch/jobs/{job_id}/progress",
        response_model=ProgressListOut,
        summary="A job's progress samples, oldest first",
    )
    def job_progress(job_id: JobId) -> ProgressListOut:
        _job_or_404(store, job_id)
        rows = [ProgressOut.of(p) for p in store.progress(str(job_id))]
        return ProgressListOut(data=rows, total=len(rows))

    @router.get(
        "/transitions",
        response_model=TransitionFeedOut,
        summary="Every transition in the order recorded",
    )
    def transition_feed(
        after: Annotated[int, Query(ge=0, description="the last id already read")] = 0,
        limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    ) -> TransitionFeedOut:
        rows = [TransitionOut.of(t) for t in store.feed(after, limit)]
        return TransitionFeedOut(data=rows, next_cursor=rows[-1].id if rows else after)

    return router


_CLIENT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


def _requested_by(value: str | None) -> str:
    """Who asked, from the X-Batchwatch-Client header (the CLI says "cli")."""
    return value if value and _CLIENT_NAME.match(value) else "api"


def _act(call: Callable[[], StoredJob]) -> BatchJobOut:
    try:
        return BatchJobOut.of(call())
    except ActionError as exc:
        raise HTTPException(status_code=exc.status_code, detail=exc.detail) from None


def action_router(actions: Actions) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["actions"], responses=_ERRORS)
    client_header = Header(alias="X-Batchwatch-Client", description="who is asking (cli, ...)")

    @router.post(
        "/batch/jobs",
        response_model=BatchJobOut,
        summary="Create a job (once)",
        responses={
            409: {"model": ErrorOut, "description": "key reused, other body"},
            502: {"model": ErrorOut, "description": "Mistral failed"},
            503: {"model": ErrorOut, "description": "outcome unknown: retry"},
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
            input_files=tuple(body.input_files or ()),
            requests=tuple(r.model_dump(exclude_none=True) for r in body.requests or ()),
            metadata=body.metadata,
            timeout_hours=body.timeout_hours,
        )
        return _act(lambda: actions.create(request, idempotency_key, _requested_by(client)))

    @router.post(
        "/batch/jobs/{job_id}/cancel",
        response_model=BatchJobOut,
        summary="Request a job's cancellation",
        responses={409: {"model": ErrorOut, "description": "the job already ended"}},
    )
    def cancel_job(
        job_id: JobId, client: Annotated[str | None, client_header] = None
    ) -> BatchJobOut:
        return _act(lambda: actions.cancel(str(job_id), _requested_by(client)))

    @router.post(
        "/batch/jobs/{job_id}/track",
        response_model=BatchJobOut,
        summary="Start tracking an existing job",
    )
    def track_job(
        job_id: JobId, client: Annotated[str | None, client_header] = None
    ) -> BatchJobOut:
        return _act(lambda: actions.track(str(job_id), _requested_by(client)))

    @router.post("/files", summary="Upload a file to Mistral (relayed)")
    def upload_file(file: UploadFile, purpose: Annotated[str, Form()] = "batch") -> dict[str, Any]:
        """Mistral's upload, relayed, so `batchwatch submit` needs only the daemon."""
        try:
            return actions.upload(file.filename or "upload.jsonl", file.file.read(), purpose)
        except ActionError as exc:
            raise HTTPException(status_code=exc.status_code, detail=exc.detail) from None

    @router.get(
        "/batch/jobs/{job_id}/actions",
        response_model=ActionListOut,
        summary="Who created, cancelled or tracked a job, and when",
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
    guard = Depends(bearer_guard(token))
    app.include_router(read_router(store), dependencies=[guard])
    if actions is not None:
        app.include_router(action_router(actions), dependencies=[guard])

    @app.get(
        "/healthz",
        response_model=HealthOut,
        tags=["service"],
        responses={503: {"model": HealthOut, "description": "degraded"}},
    )
    def healthz() -> JSONResponse:
        snap = health.snapshot(datetime.now(UTC))
        body = snap.to_json()
        try:
            body["jobs_by_status"] = store.count_by_status()
        except Exception as exc:  # the database being down is itself a health fact
            body["status"] = "degraded"
            body["reasons"] = [*body["reasons"], f"database unavailable: {type(exc).__name__}"]
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    return app
