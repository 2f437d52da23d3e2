"""Mistral's batch and files operations, each a method that returns typed records.

JSON is parsed into typed records here, at the edge (``wire.py``); the rest of batchwatch
never sees a raw response. Sessions, retries and error mapping are ``http.py``'s.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from batchwatch.errors import ApiError
from batchwatch.models import FileInfo, JobPage, ListFilter, RemoteJob
from batchwatch.providers.base import parsed_page
from batchwatch.providers.http import HttpApi, segment
from batchwatch.providers.mistral.schemas import CreateBatchJobIn
from batchwatch.providers.mistral.wire import (
    list_params,
    parse_file,
    parse_job,
    parse_outputs,
)
from batchwatch.providers.retry import RetryPolicy

__all__ = [
    "REQUEST_TAG",
    "ApiError",
    "MistralClient",
    "RetryPolicy",
]

#: The metadata key that ties an upstream job to the create intent that made it.
REQUEST_TAG = "batchwatch_request_id"


class MistralClient(HttpApi):
    """Mistral's batch and files operations, each a method that returns typed records."""

    provider = "mistral"
    not_found_grace = timedelta(0)
    create_model = CreateBatchJobIn

    def list_page(self, flt: ListFilter, page: int, page_size: int = 100) -> JobPage:
        # Mistral: jobs_api_routes_batch_get_batch_jobs (GET /v1/batch/jobs)
        body = self._json(
            "list_jobs", "GET", "/v1/batch/jobs", params=list_params(flt, page, page_size)
        )
        if not isinstance(body, dict) or not isinstance(body.get("total"), int):
            raise ApiError("list_jobs: response has no integer 'total'", retryable=True)
        data = body.get("data") or []
        if not isinstance(data, list):
            raise ApiError("list_jobs: 'data' is not a list", retryable=True)
        return parsed_page(data, parse_job, body["total"])

    def list_all(
        self,
        flt: ListFilter,
        page_size: int = 100,
        concurrency: int = 1,
    ) -> JobPage:
        """Every job matching ``flt``: the first page gives ``total``, the rest are fetched
        ``concurrency`` at a time. A job seen on two pages (the list shifted while it was
        read) is kept once; the one missed by a shift is the caller's to reconcile."""
        first = self.list_page(flt, 0, page_size)
        pages = max(1, math.ceil(first.total / page_size))
        seen: dict[str, RemoteJob] = {}
        malformed = 0

        def take(page: JobPage) -> None:
            nonlocal malformed
            malformed += page.malformed
            for job in page.jobs:
                if job.id not in seen:
                    seen[job.id] = job

        take(first)
        if pages > 1:
            with ThreadPoolExecutor(max_workers=min(concurrency, pages - 1)) as pool:
                for page in pool.map(lambda n: self.list_page(flt, n, page_size), range(1, pages)):
                    take(page)
        return JobPage(jobs=tuple(seen.values()), total=first.total, malformed=malformed)

    def get_job(self, job_id: str) -> RemoteJob:
        # Mistral: jobs_api_routes_batch_get_batch_job (GET /v1/batch/jobs/{job_id})
        return parse_job(self._json("get_job", "GET", f"/v1/batch/jobs/{segment(job_id)}"))

    def create_job(
        self, request: CreateBatchJobIn, headers: Mapping[str, str] | None = None
    ) -> RemoteJob:
        # Mistral: jobs_api_routes_batch_create_batch_job (POST /v1/batch/jobs); 200, not 201
        body = self._json(
            "create_job",
            "POST",
            "/v1/batch/jobs",
            json=request.to_json(),
            once=True,
            headers=dict(headers or {}),
        )
        return parse_job(body)

    def tagged(self, request: CreateBatchJobIn, request_id: str) -> CreateBatchJobIn:
        metadata = {**(request.metadata or {}), REQUEST_TAG: request_id}
        return request.model_copy(update={"metadata": metadata})

    def reserved(self, request: CreateBatchJobIn) -> str | None:
        if request.metadata and REQUEST_TAG in request.metadata:
            return f"metadata.{REQUEST_TAG}"
        return None

    def find_created(
        self, request_id: str, since: datetime, request: CreateBatchJobIn
    ) -> RemoteJob | None:
        """The job of mine tagged ``request_id``, among those created since ``since``."""
        # Mistral: jobs_api_routes_batch_get_batch_jobs (created_after, created_by_me)
        for job in self.list_all(ListFilter(created_after=since, created_by_me=True)).jobs:
            if (job.metadata or {}).get(REQUEST_TAG) == request_id:
                return job
        return None

    def child_request(self, parent: RemoteJob, lines: Path, parent_tag: str) -> CreateBatchJobIn:
        """A retry of ``parent``: ``lines`` (its requests' original input lines) uploaded
        as a new input file, with the parent's endpoint, model, agent and metadata."""
        uploaded = self.upload_file(lines)
        metadata = {k: v for k, v in (parent.metadata or {}).items() if k != REQUEST_TAG}
        return CreateBatchJobIn.model_validate(
            {
                "input_files": [uploaded.id],
                "endpoint": parent.endpoint,
                "model": parent.model,
                "agent_id": parent.agent_id,
                "metadata": {**metadata, parent_tag: parent.id},
            }
        )

    def cancel_job(self, job_id: str) -> RemoteJob:
        # Mistral: jobs_api_routes_batch_cancel_batch_job (POST /v1/batch/jobs/{id}/cancel)
        path = f"/v1/batch/jobs/{segment(job_id)}/cancel"
        return parse_job(self._json("cancel_job", "POST", path))

    def upload_file(self, path: Path, purpose: str = "batch") -> FileInfo:
        # Mistral: files_api_routes_upload_file (POST /v1/files, multipart)
        with path.open("rb") as fh:
            return parse_file(self._upload(path.name, fh, purpose))

    def upload_content(self, filename: str, content: bytes, purpose: str) -> dict[str, Any]:
        """Upload bytes and return Mistral's file object as sent (the local API relays it)."""
        # Mistral: files_api_routes_upload_file (POST /v1/files, multipart)
        body = self._upload(filename, content, purpose)
        parse_file(body)  # a malformed answer fails here, at the edge
        return dict(body)

    def file_content(
        self, file_id: str, chunk_bytes: int = 1 << 20
    ) -> AbstractContextManager[Iterator[bytes]]:
        """A file's content, streamed: ``with client.file_content(id) as chunks: ...``."""
        # Mistral: files_api_routes_download_file (GET /v1/files/{file_id}/content)
        return self._file_stream(file_id, chunk_bytes)

    def inline_outputs(self, job_id: str) -> list[Any]:
        """An inline job's ``outputs`` (``GET /v1/batch/jobs/{id}?inline=true``)."""
        path = f"/v1/batch/jobs/{segment(job_id)}"
        return parse_outputs(self._json("get_job", "GET", path, params={"inline": "true"}))

    def delete_job(self, job_id: str) -> bool:
        """Mistral's ``DELETE /v1/batch/jobs/{id}``; whether it answered ``deleted``."""
        # Mistral: jobs_api_routes_batch_delete_batch_job
        body = self._json("delete_job", "DELETE", f"/v1/batch/jobs/{segment(job_id)}")
        return isinstance(body, dict) and body.get("deleted") is True

    def download_file(self, file_id: str) -> bytes:
        """A (small) file's whole content; big ones are streamed with ``file_content``."""
        with self.file_content(file_id) as chunks:
            return b"".join(chunks)
