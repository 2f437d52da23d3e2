"""OpenAI's Batch and File JSON, at the edge: a ``Batch`` object parsed into a
``RemoteJob``, a ``File`` object into a ``FileInfo``.

Counts. OpenAI's ``request_counts.completed`` are the requests that succeeded and
``failed`` those that failed; batchwatch's ``completed`` is both (requests done). An
expired batch does not count its unrun requests as failed: they are neither, and the
ledger tells them apart (``not_run``).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from batchwatch.errors import ApiError
from batchwatch.models import MAX_COUNT, BatchError, Counters, FileInfo, JobStatus, RemoteJob
from batchwatch.providers.openai.statuses import STATUSES

PROVIDER = "openai"
#: The instants at which a batch ends, one per way of ending; the first one set is its end.
_END_STAMPS = ("completed_at", "failed_at", "expired_at", "cancelled_at")


def _required(body: Mapping[str, Any], key: str, kind: type, what: str = "batch") -> Any:
    value = body.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ApiError(f"{what}: field {key!r} is missing or has the wrong type", retryable=True)
    return value


def _optional(body: Mapping[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if isinstance(value, bool) and kind is int:
        return None
    return value if isinstance(value, kind) else None


def _count(counts: Mapping[str, Any], key: str) -> int:
    value = counts.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_COUNT:
        raise ApiError(f"batch: request_counts.{key} is not a count: {value!r}", retryable=True)
    return value


def _errors(body: Mapping[str, Any]) -> tuple[BatchError, ...]:
    """``errors.data``: what stopped a batch in validation (a line, a code, a message)."""
    errors = body.get("errors")
    data = errors.get("data") if isinstance(errors, dict) else None
    found: list[BatchError] = []
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, dict):
            continue
        text = str(item.get("message") or "")
        if item.get("code"):
            text = f"{item['code']}: {text}"
        if isinstance(item.get("line"), int):
            text = f"{text} (line {item['line']})"
        found.append(BatchError(text))
    return tuple(found)


def parse_job(body: Any) -> RemoteJob:
    """An OpenAI ``Batch`` → ``RemoteJob``; a malformed one is a retryable ``ApiError``, an
    unknown status ``UNKNOWN`` with the string kept."""
    if not isinstance(body, dict):
        raise ApiError("batch: response is not a JSON object", retryable=True)
    raw_status = sys.intern(_required(body, "status", str))
    counts = body.get("request_counts")
    counts = counts if isinstance(counts, dict) else {}
    succeeded, failed = _count(counts, "completed"), _count(counts, "failed")
    metadata = body.get("metadata")
    model = _optional(body, "model", str)
    return RemoteJob(
        id=_required(body, "id", str),
        status=STATUSES.get(raw_status, JobStatus.UNKNOWN),
        raw_status=raw_status,
        endpoint=sys.intern(_required(body, "endpoint", str)),
        input_files=(_required(body, "input_file_id", str),),
        model=sys.intern(model) if model else None,
        agent_id=None,
        metadata=metadata if isinstance(metadata, dict) else None,
        output_file=_optional(body, "output_file_id", str),
        error_file=_optional(body, "error_file_id", str),
        errors=_errors(body),
        created_at=_required(body, "created_at", int),
        started_at=_optional(body, "in_progress_at", int),
        completed_at=next(
            (v for k in _END_STAMPS if (v := _optional(body, k, int)) is not None), None
        ),
        counters=Counters(
            total=_count(counts, "total"),
            completed=min(MAX_COUNT, succeeded + failed),
            succeeded=succeeded,
            failed=failed,
        ),
        provider=PROVIDER,
    )


def parse_list(body: Any) -> tuple[list[Any], bool, str | None]:
    """A list answer: its items (unparsed), ``has_more`` and ``last_id`` (the next cursor)."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ApiError("list_batches: response has no 'data' list", retryable=True)
    last = body.get("last_id")
    return body["data"], body.get("has_more") is True, last if isinstance(last, str) else None


def parse_file(body: Any) -> FileInfo:
    """OpenAI's ``File`` object (an upload's answer) → ``FileInfo``."""
    if not isinstance(body, dict):
        raise ApiError("file: response is not a JSON object", retryable=True)
    return FileInfo(
        id=_required(body, "id", str, "file"),
        filename=_required(body, "filename", str, "file"),
        bytes=_optional(body, "bytes", int) or 0,
        purpose=str(body.get("purpose", "")),
        num_lines=None,
        created_at=_required(body, "created_at", int, "file"),
    )


# ---------------------------------------------------------------------------------------
# A stored job written back as OpenAI's ``Batch`` (the local ``/openai/v1`` routes)

#: Which end stamp a batch that ended in each status carries (its ``completed_at`` here).
_END_STAMP_OF = dict(zip(("completed", "failed", "expired", "cancelled"), _END_STAMPS, strict=True))
#: A batch's completion window, the one OpenAI offers: it expires this long after creation.
_WINDOW_SECONDS = 24 * 3600


def _batch_errors(job: RemoteJob) -> dict[str, Any] | None:
    # Stored as one text each (code, message and line joined by ``_errors``): the text is
    # the message; the parts cannot be told apart again, so they are not made up.
    if not job.errors:
        return None
    data = [{"code": None, "message": e.message, "param": None, "line": None} for e in job.errors]
    return {"object": "list", "data": data}


def batch_to_json(job: RemoteJob) -> dict[str, Any]:
    """A stored job → OpenAI's ``Batch`` object, in OpenAI's key order. ``status`` is the
    status as OpenAI sent it; what batchwatch does not keep (the finalizing and cancelling
    instants, token usage) is null. ``request_counts.completed`` is OpenAI's: succeeded."""
    ended = _END_STAMP_OF.get(job.raw_status)
    body: dict[str, Any] = {
        "id": job.id,
        "object": "batch",
        "endpoint": job.endpoint,
        "model": job.model,
        "errors": _batch_errors(job),
        "input_file_id": job.input_files[0] if job.input_files else "",
        "completion_window": "24h",
        "status": job.raw_status,
        "output_file_id": job.output_file,
        "error_file_id": job.error_file,
        "created_at": job.created_at,
        "in_progress_at": job.started_at,
        "expires_at": job.created_at + _WINDOW_SECONDS,
        "finalizing_at": None,
    }
    body |= {stamp: job.completed_at if stamp == ended else None for stamp in _END_STAMPS}
    body["cancelling_at"] = None
    body["request_counts"] = {
        "total": job.counters.total,
        "completed": job.counters.succeeded,
        "failed": job.counters.failed,
    }
    body["usage"] = None
    body["metadata"] = dict(job.metadata) if job.metadata is not None else None
    return body
