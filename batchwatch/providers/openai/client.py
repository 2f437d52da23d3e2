"""OpenAI's Batch and Files operations (``/v1/batches``, ``/v1/files``), each a method that
returns typed records; sessions, retries and errors are ``providers.http``'s."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from batchwatch.models import JobPage, RemoteJob
from batchwatch.providers.base import parsed_page
from batchwatch.providers.http import HttpApi, segment
from batchwatch.providers.openai.schemas import CreateBatchIn
from batchwatch.providers.openai.wire import PROVIDER, parse_file, parse_job, parse_list

#: The metadata key that ties a batch to the create intent that made it.
REQUEST_TAG = "batchwatch_request_id"


class OpenAIClient(HttpApi):
    provider = PROVIDER
    not_found_grace = timedelta(0)
    create_model = CreateBatchIn
    #: ``GET /v1/batches`` serves at most 100 a page.
    max_page_size = 100

    def list_newest(self, cursor: str | None, limit: int) -> tuple[JobPage, str | None]:
        # OpenAI: listBatches (GET /v1/batches?after=&limit=), newest first
        params: dict[str, Any] = {"limit": min(limit, self.max_page_size)}
        if cursor is not None:
            params["after"] = cursor
        items, more, last = parse_list(
            self._json("list_batches", "GET", "/v1/batches", params=params)
        )
        return parsed_page(items, parse_job, len(items)), last if more else None

    def get_job(self, job_id: str) -> RemoteJob:
        # OpenAI: retrieveBatch (GET /v1/batches/{batch_id})
        return parse_job(self._json("get_job", "GET", f"/v1/batches/{segment(job_id)}"))

    def get_raw(self, job_id: str) -> dict[str, Any]:
        """The batch as OpenAI sent it (the local OpenAI routes relay it); checked first."""
        body = self._json("get_job", "GET", f"/v1/batches/{segment(job_id)}")
        parse_job(body)
        return dict(body)

    def create_job(
        self, request: CreateBatchIn, headers: Mapping[str, str] | None = None
    ) -> RemoteJob:
        # OpenAI: createBatch (POST /v1/batches); sent once, never resent blindly
        body = self._json(
            "create_job", "POST", "/v1/batches", json=request.to_json(), once=True,
            headers=dict(headers or {}),
        )  # fmt: skip
        return parse_job(body)

    def cancel_job(self, job_id: str) -> RemoteJob:
        # OpenAI: cancelBatch (POST /v1/batches/{batch_id}/cancel)
        path = f"/v1/batches/{segment(job_id)}/cancel"
        return parse_job(self._json("cancel_job", "POST", path))

    def tagged(self, request: CreateBatchIn, request_id: str) -> CreateBatchIn:
        metadata = {**(request.metadata or {}), REQUEST_TAG: request_id}
        return request.model_copy(update={"metadata": metadata})

    def reserved(self, request: CreateBatchIn) -> str | None:
        if request.metadata and REQUEST_TAG in request.metadata:
            return f"metadata.{REQUEST_TAG}"
        return None

    def find_created(
        self, request_id: str, since: datetime, request: CreateBatchIn
    ) -> RemoteJob | None:
        """The batch tagged ``request_id``, among those created since ``since`` (newest
        first, so the pages stop at the first batch older than that)."""
        cursor: str | None = None
        while True:
            page, cursor = self.list_newest(cursor, self.max_page_size)
            for job in page.jobs:
                if (job.metadata or {}).get(REQUEST_TAG) == request_id:
                    return job
            if cursor is None or any(j.created_at < since.timestamp() for j in page.jobs):
                return None

    def child_request(self, parent: RemoteJob, lines: Path, parent_tag: str) -> CreateBatchIn:
        """A retry of ``parent``: ``lines`` uploaded as a new input file, same endpoint."""
        uploaded = parse_file(self.upload_content(lines.name, lines.read_bytes(), "batch"))
        metadata = {k: v for k, v in (parent.metadata or {}).items() if k != REQUEST_TAG}
        return CreateBatchIn.model_validate(
            {
                "input_file_id": uploaded.id,
                "endpoint": parent.endpoint,
                "metadata": {**metadata, parent_tag: parent.id},
            }
        )

    def upload_content(self, filename: str, content: bytes, purpose: str) -> dict[str, Any]:
        """Upload bytes; OpenAI's ``File`` as sent (the local API relays it)."""
        # OpenAI: createFile (POST /v1/files, multipart)
        body = self._upload(filename, content, purpose)
        parse_file(body)
        return dict(body)

    def file_content(
        self, file_id: str, chunk_bytes: int = 1 << 20
    ) -> AbstractContextManager[Iterator[bytes]]:
        # OpenAI: downloadFile (GET /v1/files/{file_id}/content)
        return self._file_stream(file_id, chunk_bytes)

    def inline_outputs(self, job_id: str) -> list[Any]:
        """OpenAI batches have no inline outputs: a batch without an output file (all its
        requests failed) has none."""
        return []
