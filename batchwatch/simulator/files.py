"""The simulator's half for files: the Files API store and routes, and the batch file formats.

Split out of ``simulator.py`` along one line: everything here is about *bytes in files*
(uploads, the JSONL a batch reads, the JSONL result and error files it writes), while
``simulator.py`` owns the job lifecycle and the HTTP wiring. Nothing here takes a lock or
reads the clock: the ``Simulation`` calls in with its lock held and ``now`` in hand.

Result file formats (docs/mistral-api.md §6). Each line of an output file (``batch_result``) is
``{"id": "batch-<8 hex of job id>-<1-based request index>-<uuid4>", "custom_id": ...,
"response": {"status_code": 200, "body": <the endpoint's normal response>}, "error": null}``.
The error file (``batch_error``) format is undocumented upstream; the simulator writes the
same ``id``/``custom_id`` with ``"response": {"status_code": 500, "body": <Mistral's
documented error body>}`` and ``"error": {"message": "...", "code": "simulated_failure"}``.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response

if TYPE_CHECKING:  # the Simulation imports this module; only the type flows back
    from batchwatch.simulator.app import Simulation

FilePurpose = Literal["fine-tune", "batch", "ocr"]
SampleType = Literal["pretrain", "instruct", "batch_request", "batch_result", "batch_error"]
FileSource = Literal["upload", "repository", "mistral"]
FileVisibility = Literal["workspace", "user"]

ERROR_CODE = "simulated_failure"


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One file of the Files API, content included (``FileSchema`` on the wire)."""

    id: str
    filename: str
    purpose: FilePurpose
    sample_type: SampleType
    source: FileSource
    created_at: float
    content: bytes
    num_lines: int | None
    mimetype: str | None = "application/jsonl"
    visibility: FileVisibility | None = "workspace"
    expires_at: int | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": int(self.created_at),
            "filename": self.filename,
            "purpose": self.purpose,
            "sample_type": self.sample_type,
            "source": self.source,
            "num_lines": self.num_lines,
            "mimetype": self.mimetype,
            # Mistral shows 16 hex chars here; a content hash is the natural reading.
            "signature": hashlib.sha256(self.content).hexdigest()[:16],
            "expires_at": self.expires_at,
            "visibility": self.visibility,
        }


@dataclass(frozen=True, slots=True)
class FileQuery:
    """Query parameters of ``GET /v1/files``."""

    page: int = 0
    page_size: int = 100
    sample_types: frozenset[str] = frozenset()
    sources: frozenset[str] = frozenset()
    search: str | None = None
    purpose: str | None = None
    mimetypes: frozenset[str] = frozenset()

    def matches(self, file: StoredFile) -> bool:
        return (
            (not self.sample_types or file.sample_type in self.sample_types)
            and (not self.sources or file.source in self.sources)
            and (self.search is None or self.search in file.filename)
            and (self.purpose is None or file.purpose == self.purpose)
            and (not self.mimetypes or file.mimetype in self.mimetypes)
        )


class FileStore:
    """Files by id. Result files are registered lazily and rendered on first read.

    A benchmark seeds 10,000 jobs that all finish in the same instant; writing every
    result file then would stall that one request for seconds. Rendering on first read
    costs only the files someone actually looks at. Not thread-safe: the ``Simulation``
    holds its lock around every call.
    """

    def __init__(self) -> None:
        self._files: dict[str, StoredFile] = {}
        self._pending: dict[str, Callable[[], StoredFile]] = {}

    def add(self, file: StoredFile) -> None:
        self._files[file.id] = file

    def add_lazy(self, file_id: str, render: Callable[[], StoredFile]) -> None:
        self._pending[file_id] = render

    def get(self, file_id: str) -> StoredFile | None:
        render = self._pending.pop(file_id, None)
        if render is not None:
            self._files[file_id] = render()
        return self._files.get(file_id)

    def delete(self, file_id: str) -> bool:
        pending = self._pending.pop(file_id, None) is not None
        return self._files.pop(file_id, None) is not None or pending

    def list(self, query: FileQuery) -> tuple[list[StoredFile], int]:
        """One page, newest first (ties by id, for a stable order), and the match count."""
        for file_id in list(self._pending):
            self.get(file_id)
        matching = sorted(
            (f for f in self._files.values() if query.matches(f)),
            key=lambda f: (f.created_at, f.id),
            reverse=True,
        )
        start = query.page * query.page_size
        return matching[start : start + query.page_size], len(matching)


def uploaded_file(
    filename: str,
    content: bytes,
    *,
    purpose: FilePurpose,
    created_at: float,
    visibility: FileVisibility,
    expiry_hours: int | None,
) -> StoredFile:
    """The record for an upload: batch inputs are ``batch_request`` (docs/mistral-api.md §2)."""
    return StoredFile(
        id=str(uuid.uuid4()),
        filename=filename,
        purpose=purpose,
        # Only batch's sample type is documented; "instruct" is what fine-tune data is.
        sample_type="batch_request" if purpose == "batch" else "instruct",
        source="upload",
        created_at=created_at,
        content=content,
        num_lines=count_lines(content),
        mimetype="application/jsonl" if filename.endswith(".jsonl") else None,
        visibility=visibility,
        expires_at=None if expiry_hours is None else int(created_at) + expiry_hours * 3600,
    )


def count_lines(content: bytes) -> int | None:
    """Non-blank lines of a text file; ``None`` for binary content (a PDF for OCR)."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return sum(1 for line in text.splitlines() if line.strip())


# --- Batch input and result lines ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestLine:
    """One request of a batch: from an input file line, or an inline ``BatchRequest``."""

    custom_id: str | None
    body: Mapping[str, Any]


def parse_request_lines(content: bytes) -> tuple[RequestLine, ...]:
    """The requests of an input JSONL file, one per non-blank line.

    Lenient on purpose: a line that is not a JSON object still counts as a request (the
    real service accepts the file at create and fails bad lines later).
    """
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return ()
    return tuple(_request_line(raw) for raw in text.splitlines() if raw.strip())


def _request_line(raw: str) -> RequestLine:
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        return RequestLine(None, {})
    if not isinstance(parsed, dict):
        return RequestLine(None, {})
    custom_id = parsed.get("custom_id")
    body = parsed.get("body")
    return RequestLine(
        None if custom_id is None else str(custom_id), body if isinstance(body, dict) else {}
    )


@dataclass(frozen=True, slots=True)
class ResultSource:
    """What a job's result file is rendered from. ``requests`` is ``None`` for seeded
    jobs, whose requests are synthetic (custom ids ``"0"``, ``"1"``, …)."""

    job_id: str
    endpoint: str
    model: str | None
    requests: tuple[RequestLine, ...] | None
    processed: int  # requests 0 .. processed-1 ran
    is_failed: Callable[[int], bool]
    finished_at: float

    def request(self, index: int) -> RequestLine:
        return RequestLine(str(index), {}) if self.requests is None else self.requests[index]


def result_file(source: ResultSource, *, errors: bool, file_id: str) -> StoredFile:
    """The output file (the succeeded requests) or, with ``errors``, the error file."""
    render = _error_line if errors else _output_line
    lines = [
        render(source, index)
        for index in range(source.processed)
        if source.is_failed(index) == errors
    ]
    kind = "error" if errors else "output"
    return StoredFile(
        id=file_id,
        filename=f"batch-{source.job_id}-{kind}.jsonl",
        purpose="batch",
        sample_type="batch_error" if errors else "batch_result",
        source="mistral",
        created_at=source.finished_at,
        content=b"".join(json.dumps(line).encode() + b"\n" for line in lines),
        num_lines=len(lines),
    )


def _line_id(source: ResultSource, index: int) -> str:
    return f"batch-{source.job_id.replace('-', '')[:8]}-{index + 1}-{uuid.uuid4()}"


def _output_line(source: ResultSource, index: int) -> dict[str, Any]:
    request = source.request(index)
    model = source.model or str(request.body.get("model") or "mistral-small-latest")
    build = _RESPONSE_BODIES.get(source.endpoint, _chat_completion)
    body = build(model, index + 1, int(source.finished_at))
    return {
        "id": _line_id(source, index),
        "custom_id": request.custom_id,
        "response": {"status_code": 200, "body": body},
        "error": None,
    }


def _error_line(source: ResultSource, index: int) -> dict[str, Any]:
    message = f"Simulated failure of request {index + 1}"
    return {
        "id": _line_id(source, index),
        "custom_id": source.request(index).custom_id,
        "response": {"status_code": 500, "body": error_body(message, "server_error")},
        "error": {"message": message, "code": ERROR_CODE},
    }


def error_body(message: str, error_type: str = "invalid_request_error") -> dict[str, Any]:
    """Mistral's documented error body (docs/mistral-api.md §3, DOC-ERR)."""
    return {"object": "error", "message": message, "type": error_type, "param": None, "code": None}


# Plausible response bodies per endpoint: enough shape that a consumer parsing
# ``response.body`` the way it parses the live endpoint does not trip.
def _usage(prompt: int = 12, completion: int = 8) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _chat_completion(model: str, n: int, created: int) -> dict[str, Any]:
    message = {"role": "assistant", "content": f"Simulated answer {n}.", "tool_calls": None}
    return {
        "id": uuid.uuid4().hex,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": _usage(),
    }


def _embedding(model: str, n: int, created: int) -> dict[str, Any]:
    vector = [round(math.sin(n + i), 6) for i in range(8)]
    return {
        "id": uuid.uuid4().hex,
        "object": "list",
        "model": model,
        "data": [{"object": "embedding", "embedding": vector, "index": 0}],
        "usage": _usage(completion=0),
    }


def _moderation(model: str, n: int, created: int) -> dict[str, Any]:
    categories = ("sexual", "hate_and_discrimination", "violence_and_threats", "selfharm")
    return {
        "id": uuid.uuid4().hex,
        "model": model,
        "results": [
            {
                "categories": dict.fromkeys(categories, False),
                "category_scores": dict.fromkeys(categories, 0.001),
            }
        ],
    }


def _ocr(model: str, n: int, created: int) -> dict[str, Any]:
    page = {"index": 0, "markdown": f"# Simulated page {n}", "images": [], "dimensions": None}
    return {"model": model, "pages": [page], "usage_info": {"pages_processed": 1}}


def _conversation(model: str, n: int, created: int) -> dict[str, Any]:
    entry = {"object": "entry", "type": "message.output", "role": "assistant",
             "content": f"Simulated answer {n}."}  # fmt: skip
    return {
        "object": "conversation.response",
        "conversation_id": f"conv_{uuid.uuid4().hex}",
        "outputs": [entry],
        "usage": _usage(),
    }


def _transcription(model: str, n: int, created: int) -> dict[str, Any]:
    text = f"Simulated transcript {n}."
    return {"model": model, "text": text, "language": "en", "segments": [], "usage": _usage()}


_RESPONSE_BODIES: dict[str, Callable[[str, int, int], dict[str, Any]]] = {
    "/v1/chat/completions": _chat_completion,
    "/v1/fim/completions": _chat_completion,
    "/v1/embeddings": _embedding,
    "/v1/moderations": _moderation,
    "/v1/chat/moderations": _moderation,
    "/v1/classifications": _moderation,
    "/v1/chat/classifications": _moderation,
    "/v1/ocr": _ocr,
    "/v1/conversations": _conversation,
    "/v1/audio/transcriptions": _transcription,
}


# --- Files API routes -----------------------------------------------------------------


def files_router(simulation: Simulation) -> APIRouter:
    """The ``/v1/files`` routes (docs/mistral-api.md §2). Auth is checked by the gateway."""
    router = APIRouter()

    # files_api_routes_upload_file
    @router.post("/v1/files")
    async def upload_file(
        file: UploadFile,
        purpose: Annotated[FilePurpose | None, Form()] = None,
        visibility: Annotated[FileVisibility, Form()] = "workspace",
        expiry: Annotated[int | None, Form()] = None,
    ) -> JSONResponse:
        content = await file.read()
        stored = simulation.upload_file(
            file.filename or "upload",
            content,
            # The spec gives no default purpose; "fine-tune" was the API's historical one.
            purpose=purpose or "fine-tune",
            visibility=visibility,
            expiry_hours=expiry,
        )
        return JSONResponse(stored.to_wire())

    # files_api_routes_list_files
    @router.get("/v1/files")
    async def list_files(
        *,
        page: Annotated[int, Query(ge=0)] = 0,
        page_size: Annotated[int, Query(ge=0)] = 100,
        include_total: bool = True,
        sample_type: Annotated[list[SampleType] | None, Query()] = None,
        source: Annotated[list[FileSource] | None, Query()] = None,
        search: str | None = None,
        purpose: FilePurpose | None = None,
        mimetypes: Annotated[list[str] | None, Query()] = None,
    ) -> JSONResponse:
        query = FileQuery(
            page=page,
            page_size=page_size,
            sample_types=frozenset(sample_type or ()),
            sources=frozenset(source or ()),
            search=search,
            purpose=purpose,
            mimetypes=frozenset(mimetypes or ()),
        )
        files, total = simulation.list_files(query)
        data = [f.to_wire() for f in files]
        return JSONResponse(
            {"object": "list", "data": data, "total": total if include_total else None}
        )

    # files_api_routes_retrieve_file
    @router.get("/v1/files/{file_id}")
    async def retrieve_file(file_id: uuid.UUID) -> JSONResponse:
        return JSONResponse(simulation.get_file(str(file_id)).to_wire() | {"deleted": False})

    # files_api_routes_delete_file
    @router.delete("/v1/files/{file_id}")
    async def delete_file(file_id: uuid.UUID) -> JSONResponse:
        simulation.delete_file(str(file_id))
        return JSONResponse({"id": str(file_id), "object": "file", "deleted": True})

    # files_api_routes_download_file
    @router.get("/v1/files/{file_id}/content")
    async def download_file(file_id: uuid.UUID) -> Response:
        return _download(simulation.get_file(str(file_id)))

    # files_api_routes_get_signed_url: points at the unauthenticated /_sim download below.
    @router.get("/v1/files/{file_id}/url")
    async def signed_url(
        file_id: uuid.UUID, request: Request, expiry: Annotated[int, Query(ge=1, le=168)] = 24
    ) -> JSONResponse:
        stored = simulation.get_file(str(file_id))
        url = request.url_for("signed_download", file_id=stored.id)
        return JSONResponse({"url": f"{url}?expiry={expiry}"})

    @router.get("/_sim/files/{file_id}/content", name="signed_download")
    async def signed_download(file_id: uuid.UUID) -> Response:
        return _download(simulation.get_file(str(file_id)))

    return router


def _download(file: StoredFile) -> Response:
    disposition = f'attachment; filename="{file.filename}"'
    return Response(
        file.content,
        media_type="application/octet-stream",
        headers={"Content-Disposition": disposition},
    )


def jsonl_objects(content: bytes) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file (the inline ``outputs`` of a finished job)."""
    return [json.loads(line) for line in content.splitlines() if line.strip()]
