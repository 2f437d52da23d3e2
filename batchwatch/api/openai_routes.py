"""OpenAI's Batch and Files API, served by the daemon under ``/openai/v1`` in OpenAI's own
shapes, so that ``OpenAI(base_url=DAEMON + "/openai/v1", api_key=TOKEN)`` works: batches
are read from the store (and rendered by ``providers.openai.wire.batch_to_json``), created
and cancelled through ``Actions``; files are relayed to and from OpenAI."""

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, UploadFile
from fastapi.responses import StreamingResponse

from batchwatch.actions import Actions
from batchwatch.api.actions import Client, IdempotencyKey, refused, requested_by
from batchwatch.api.guards import MAX_UPLOAD_BYTES
from batchwatch.api.native import NativeJobs
from batchwatch.api.native_errors import OPENAI_ERRORS
from batchwatch.errors import ActionError
from batchwatch.providers.mistral.schemas import PLAIN_TEXT
from batchwatch.providers.openai.schemas import CreateBatchIn
from batchwatch.providers.openai.wire import PROVIDER, batch_to_json

PREFIX = "/openai/v1"
#: What a file id or a cursor may be here: plain text, bounded (upstream says if it exists).
_Id = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")]


def openai_router(actions: Actions) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["openai"], responses=OPENAI_ERRORS)
    jobs = NativeJobs(actions, PROVIDER)
    _file_routes(router, actions, jobs)
    _batch_routes(router, jobs)
    return router


def _file_routes(router: APIRouter, actions: Actions, jobs: NativeJobs) -> None:
    @router.post(
        "/files",
        summary="Upload a file to OpenAI (relayed)",
        description=f"The body may be up to {MAX_UPLOAD_BYTES} bytes (OpenAI's limit).",
    )
    def create_file(
        file: UploadFile, purpose: Annotated[str, Form(min_length=1, pattern=PLAIN_TEXT)]
    ) -> dict[str, Any]:
        """OpenAI: createFile (POST /v1/files), relayed; answers OpenAI's File object."""
        content = file.file.read()
        try:
            return actions.upload(file.filename or "upload.jsonl", content, purpose, PROVIDER)
        except ActionError as exc:
            raise refused(exc) from None

    @router.get(
        "/files/{file_id}/content",
        summary="A file's content from OpenAI (streamed)",
        response_class=StreamingResponse,
    )
    def file_content(file_id: _Id) -> StreamingResponse:
        """OpenAI: downloadFile (GET /v1/files/{file_id}/content), streamed through."""
        return jobs.stream(file_id, "application/octet-stream")


def _batch_routes(router: APIRouter, jobs: NativeJobs) -> None:
    @router.post("/batches", summary="Create a batch (once per Idempotency-Key)")
    def create_batch(
        body: CreateBatchIn, idempotency_key: IdempotencyKey = None, client: Client = None
    ) -> dict[str, Any]:
        """OpenAI: createBatch (POST /v1/batches); recorded before the answer, and the same
        ``Idempotency-Key`` always answers the same batch."""
        return batch_to_json(jobs.create(body, idempotency_key, requested_by(client)))

    @router.get("/batches", summary="Tracked batches, newest first")
    def list_batches(
        after: Annotated[str | None, Query(max_length=128)] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> dict[str, Any]:
        """OpenAI: listBatches (GET /v1/batches?after=&limit=), from the store."""
        page = jobs.page(limit, after=after)
        data = [batch_to_json(job) for job in page.jobs]
        return {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": page.has_more,
        }

    @router.get("/batches/{batch_id}", summary="A batch, as last recorded")
    def retrieve_batch(batch_id: str, client: Client = None) -> dict[str, Any]:
        """OpenAI: retrieveBatch (GET /v1/batches/{batch_id}), from the store; a batch not
        tracked yet is read from OpenAI and tracked from then on."""
        return batch_to_json(jobs.get(batch_id, requested_by(client)))

    @router.post("/batches/{batch_id}/cancel", summary="Request a batch's cancellation")
    def cancel_batch(batch_id: str, client: Client = None) -> dict[str, Any]:
        """OpenAI: cancelBatch (POST /v1/batches/{batch_id}/cancel), recorded."""
        return batch_to_json(jobs.cancel(batch_id, requested_by(client)))
