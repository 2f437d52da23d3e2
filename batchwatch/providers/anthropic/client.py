"""Anthropic's Message Batches operations (``/v1/messages/batches``), each a method that
returns typed records; sessions, retries and errors are ``providers.http``'s."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from batchwatch.models import JobPage, RemoteJob
from batchwatch.providers.anthropic.schemas import CreateMessageBatchIn
from batchwatch.providers.anthropic.wire import PROVIDER, parse_job, parse_list
from batchwatch.providers.base import parsed_page
from batchwatch.providers.http import HttpApi, segment

#: The API version every request names (``anthropic-version``): the one Message Batches
#: are documented under.
API_VERSION = "2023-06-01"
_BATCHES = "/v1/messages/batches"


class AnthropicClient(HttpApi):
    provider = PROVIDER
    create_model = CreateMessageBatchIn
    #: A batch can answer 404 for a moment right after it was created.
    not_found_grace = timedelta(seconds=60)
    #: ``GET /v1/messages/batches`` serves at most 1,000 a page.
    max_page_size = 1000

    def auth_headers(self, api_key: str) -> dict[str, str]:
        # The documented header; current SDKs send a bearer token, which is accepted too.
        return {"x-api-key": api_key, "anthropic-version": API_VERSION}

    def list_newest(self, cursor: str | None, limit: int) -> tuple[JobPage, str | None]:
        # Anthropic: list message batches (GET /v1/messages/batches?after_id=&limit=); newest
        # first, so the page after ``cursor`` holds older batches.
        params: dict[str, Any] = {"limit": min(limit, self.max_page_size)}
        if cursor is not None:
            params["after_id"] = cursor
        body = self._json("list_batches", "GET", _BATCHES, params=params)
        items, more, last = parse_list(body)
        return parsed_page(items, parse_job, len(items)), last if more else None

    def get_job(self, job_id: str) -> RemoteJob:
        # Anthropic: retrieve a message batch (GET /v1/messages/batches/{id})
        return parse_job(self._json("get_job", "GET", f"{_BATCHES}/{segment(job_id)}"))

    def create_job(
        self, request: CreateMessageBatchIn, headers: Mapping[str, str] | None = None
    ) -> RemoteJob:
        # Anthropic: create a message batch (POST /v1/messages/batches); sent once
        body = self._json(
            "create_job", "POST", _BATCHES, json=request.to_json(), once=True,
            headers=dict(headers or {}),
        )  # fmt: skip
        return parse_job(body)

    def cancel_job(self, job_id: str) -> RemoteJob:
        # Anthropic: cancel a message batch (POST /v1/messages/batches/{id}/cancel)
        return parse_job(self._json("cancel_job", "POST", f"{_BATCHES}/{segment(job_id)}/cancel"))

    def tagged(self, request: CreateMessageBatchIn, request_id: str) -> CreateMessageBatchIn:
        """A batch has no metadata to carry a tag: ``find_created`` matches it otherwise."""
        return request

    def reserved(self, request: CreateMessageBatchIn) -> str | None:
        return None

    def find_created(
        self, request_id: str, since: datetime, request: CreateMessageBatchIn
    ) -> RemoteJob | None:
        """The batch an unanswered create made: with no tag to look for, the one batch
        created since ``since`` with as many requests; None when none or several are."""
        found: list[RemoteJob] = []
        cursor: str | None = None
        while True:
            page, cursor = self.list_newest(cursor, self.max_page_size)
            found += [
                j for j in page.jobs
                if j.created_at >= since.timestamp() and j.counters.total == len(request.requests)
            ]  # fmt: skip
            if cursor is None or any(j.created_at < since.timestamp() for j in page.jobs):
                return found[0] if len(found) == 1 else None

    def child_request(
        self, parent: RemoteJob, lines: Path, parent_tag: str
    ) -> CreateMessageBatchIn:
        """A retry of ``parent``: ``lines`` (its requests as created, ``{custom_id,
        params}``) sent inline. A batch has no metadata: the parent is known here only."""
        with lines.open("rb") as source:
            requests = [orjson.loads(line) for line in source if line.strip()]
        return CreateMessageBatchIn.model_validate({"requests": requests})

    def delete_job(self, job_id: str) -> bool:
        # Anthropic: delete a message batch (DELETE /v1/messages/batches/{id}), once ended
        body = self._json("delete_job", "DELETE", f"{_BATCHES}/{segment(job_id)}")
        return isinstance(body, dict) and body.get("type") == "message_batch_deleted"

    def file_content(
        self, file_id: str, chunk_bytes: int = 1 << 20
    ) -> AbstractContextManager[Iterator[bytes]]:
        """A batch's results (``file_id`` is its id: ``wire``), streamed as JSONL."""
        # Anthropic: retrieve message batch results (GET /v1/messages/batches/{id}/results)
        path = f"{_BATCHES}/{segment(file_id)}/results"
        return self._stream("batch_results", path, chunk_bytes)

    def inline_outputs(self, job_id: str) -> list[Any]:
        return []  # results come only from ``results_url``
