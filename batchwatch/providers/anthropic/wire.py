"""Anthropic's ``MessageBatch`` JSON, at the edge, parsed into a ``RemoteJob``.

* ``processing_status`` ``ended`` maps by the counts: CANCELLED if a cancel was initiated,
  else TIMEOUT_EXCEEDED if any request expired, else FAILED if none succeeded, else SUCCESS.
* Counts stay in ``processing`` until the batch ends: batchwatch's ``completed`` is the
  requests that got an answer (succeeded + errored), ``failed`` the errored ones; canceled
  and expired requests never ran.
* A batch's results are one JSONL stream at ``results_url``, set once it ended: the job's
  ``output_file`` is then the batch id, read from ``/v1/messages/batches/{id}/results``.
* A batch has no endpoint field: every request goes to the Messages API.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from batchwatch.errors import ApiError
from batchwatch.models import MAX_COUNT, Counters, JobStatus, RemoteJob
from batchwatch.providers.anthropic.statuses import STATUSES

PROVIDER = "anthropic"
ENDPOINT = "/v1/messages"
_COUNTS = ("processing", "succeeded", "errored", "canceled", "expired")


def _required(body: Mapping[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if not isinstance(value, kind):
        raise ApiError(
            f"message_batch: field {key!r} is missing or has the wrong type", retryable=True
        )
    return value


def _stamp(body: Mapping[str, Any], key: str, *, required: bool = False) -> int | None:
    """An RFC 3339 instant as epoch seconds (the common records' unit)."""
    value = body.get(key)
    if value is None and not required:
        return None
    try:
        return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp())
    except ValueError:
        if required:
            raise ApiError(
                f"message_batch: {key} is not an instant: {value!r}", retryable=True
            ) from None
        return None


def _counts(body: Mapping[str, Any]) -> dict[str, int]:
    counts = _required(body, "request_counts", dict)
    found: dict[str, int] = {}
    for key in _COUNTS:
        value = counts.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_COUNT:
            raise ApiError(f"message_batch: request_counts.{key} is not a count", retryable=True)
        found[key] = value
    return found


def common_status(raw_status: str, counts: Mapping[str, int], cancel_initiated: bool) -> JobStatus:
    """The common status of a batch (see the module)."""
    if raw_status != "ended":
        return STATUSES.get(raw_status) or JobStatus.UNKNOWN
    if cancel_initiated:
        return JobStatus.CANCELLED
    if counts["expired"]:
        return JobStatus.TIMEOUT_EXCEEDED
    if not counts["succeeded"]:
        return JobStatus.FAILED
    return JobStatus.SUCCESS


def parse_job(body: Any) -> RemoteJob:
    """A ``MessageBatch`` → ``RemoteJob``; a malformed one is a retryable ``ApiError``."""
    if not isinstance(body, dict):
        raise ApiError("message_batch: response is not a JSON object", retryable=True)
    raw_status = sys.intern(_required(body, "processing_status", str))
    counts = _counts(body)
    job_id = _required(body, "id", str)
    created = _stamp(body, "created_at", required=True)
    assert created is not None
    return RemoteJob(
        id=job_id,
        status=common_status(raw_status, counts, body.get("cancel_initiated_at") is not None),
        raw_status=raw_status,
        endpoint=ENDPOINT,
        input_files=(),
        model=None,
        agent_id=None,
        metadata=None,
        output_file=job_id if isinstance(body.get("results_url"), str) else None,
        error_file=None,
        errors=(),
        created_at=created,
        started_at=created,  # a batch is processed from the moment it is created
        completed_at=_stamp(body, "ended_at"),
        counters=Counters(
            total=min(MAX_COUNT, sum(counts.values())),
            completed=min(MAX_COUNT, counts["succeeded"] + counts["errored"]),
            succeeded=counts["succeeded"],
            failed=counts["errored"],
        ),
        provider=PROVIDER,
    )


def parse_list(body: Any) -> tuple[list[Any], bool, str | None]:
    """A list answer: its items (unparsed), ``has_more`` and ``last_id`` (the next cursor)."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ApiError("list_message_batches: response has no 'data' list", retryable=True)
    last = body.get("last_id")
    return body["data"], body.get("has_more") is True, last if isinstance(last, str) else None


# ---------------------------------------------------------------------------------------
# A stored job written back as a ``MessageBatch`` (the local ``/anthropic`` routes)

#: How long a batch may run: it expires this long after it was created.
_LIFETIME_SECONDS = 24 * 3600


def _rfc3339(epoch: int | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _request_counts(job: RemoteJob) -> dict[str, int]:
    """The five counts back from the stored three (see the module): until the batch ends
    every unanswered request is ``processing``; at the end those that never ran were
    canceled if the batch was cancelled, else they expired."""
    c = job.counters
    unanswered = max(0, c.total - c.completed)
    ended = job.raw_status == "ended"
    cancelled = job.status is JobStatus.CANCELLED
    return {
        "processing": 0 if ended else unanswered,
        "succeeded": c.succeeded,
        "errored": c.failed,
        "canceled": unanswered if ended and cancelled else 0,
        "expired": unanswered if ended and not cancelled else 0,
    }


def batch_to_json(job: RemoteJob, results_url: str | None) -> dict[str, Any]:
    """A stored job → Anthropic's ``MessageBatch``. ``results_url`` is where the caller
    serves the results: given only once the batch ended (null before, as Anthropic does).
    When a cancel was initiated is not kept: ``cancel_initiated_at`` is null."""
    ended = job.raw_status == "ended"
    return {
        "id": job.id,
        "type": "message_batch",
        "processing_status": job.raw_status,
        "request_counts": _request_counts(job),
        "ended_at": _rfc3339(job.completed_at) if ended else None,
        "created_at": _rfc3339(job.created_at),
        "expires_at": _rfc3339(job.created_at + _LIFETIME_SECONDS),
        "archived_at": None,
        "cancel_initiated_at": None,
        "results_url": results_url if ended else None,
    }
