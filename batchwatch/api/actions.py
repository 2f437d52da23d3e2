"""The action routes: create, cancel, track and upload go upstream through ``Actions``,
which records the outcome before the answer; and the log of who asked for each."""

import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Header, HTTPException, UploadFile

from batchwatch.actions import Actions
from batchwatch.api.guards import MAX_UPLOAD_BYTES
from batchwatch.api.reads import JobId, no_such_job
from batchwatch.api.schemas import (
    BAD_BODY,
    COMMON_ERRORS,
    NOT_FOUND,
    UPSTREAM_ERRORS,
    ActionListOut,
    ActionOut,
    BatchJobOut,
    UploadPurpose,
    error_response,
    job_body,
)
from batchwatch.errors import ActionError
from batchwatch.logs import redact
from batchwatch.models import StoredJob
from batchwatch.providers.mistral.schemas import CreateBatchJobIn
from batchwatch.store import intents

_CLIENT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_CLIENT_HEADER = Header(alias="X-Batchwatch-Client", description="who is asking (cli, ...)")
Client = Annotated[str | None, _CLIENT_HEADER]
#: The header that makes a create idempotent (every create route takes it).
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]


def requested_by(value: str | None) -> str:
    """Who asked, from the X-Batchwatch-Client header (the CLI says "cli")."""
    return value if value and _CLIENT_NAME.match(value) else "api"


def act_on(call: Callable[[], StoredJob]) -> dict[str, Any]:
    try:
        return job_body(call().remote)
    except ActionError as exc:
        raise refused(exc) from None


def refused(exc: ActionError) -> HTTPException:
    # Mistral's words pass through; a secret must not, whatever Mistral echoes back.
    return HTTPException(status_code=exc.status_code, detail=redact(exc.detail))


def action_router(actions: Actions) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["actions"], responses=COMMON_ERRORS)
    _job_actions(router, actions)
    _file_and_log_routes(router, actions)
    return router


def _job_actions(router: APIRouter, actions: Actions) -> None:
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
        idempotency_key: IdempotencyKey = None,
        client: Client = None,
    ) -> dict[str, Any]:
        """Mistral's create, forwarded; the job is recorded and tracked before the answer.
        The same ``Idempotency-Key`` always returns the same job, never a second one."""
        return act_on(lambda: actions.create(body, idempotency_key, requested_by(client)))

    @router.post(
        "/batch/jobs/{job_id}/cancel",
        response_model=BatchJobOut,
        summary="Request a job's cancellation",
        responses={**UPSTREAM_ERRORS, **NOT_FOUND, 409: error_response("the job already ended")},
    )
    def cancel_job(job_id: JobId, client: Client = None) -> dict[str, Any]:
        return act_on(lambda: actions.cancel(job_id, requested_by(client)))

    @router.post(
        "/batch/jobs/{job_id}/track",
        response_model=BatchJobOut,
        summary="Start tracking an existing job",
        responses={**UPSTREAM_ERRORS, **NOT_FOUND},
    )
    def track_job(job_id: JobId, client: Client = None) -> dict[str, Any]:
        return act_on(lambda: actions.track(job_id, requested_by(client)))


def _file_and_log_routes(router: APIRouter, actions: Actions) -> None:
    @router.post(
        "/files",
        summary="Upload a file to Mistral (relayed)",
        description=f"The body may be up to {MAX_UPLOAD_BYTES} bytes (Mistral's limit).",
        responses={**BAD_BODY, **UPSTREAM_ERRORS},
    )
    def upload_file(
        file: UploadFile, purpose: Annotated[UploadPurpose, Form()] = "batch"
    ) -> dict[str, Any]:
        """Mistral's upload, relayed, so `batchwatch submit` needs only the daemon."""
        content = file.file.read()
        try:
            return actions.upload(file.filename or "upload.jsonl", content, purpose or "batch")
        except ActionError as exc:
            raise refused(exc) from None

    @router.get(
        "/batch/jobs/{job_id}/actions",
        response_model=ActionListOut,
        summary="Who created, cancelled or tracked a job, and when",
        responses=NOT_FOUND,
    )
    def job_actions(job_id: JobId) -> ActionListOut:
        if not actions.store.has_job(job_id):
            raise no_such_job(job_id)
        rows = [ActionOut.of(a) for a in intents.job_actions(actions.store, job_id)]
        return ActionListOut(data=rows, total=len(rows))
