"""Mistral's JSON shapes, at the edge: requests built, responses parsed into typed records.

Pure: no I/O. A malformed body becomes a retryable ``ApiError``; an unknown status string
becomes ``JobStatus.UNKNOWN`` with the raw string kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from sys import intern
from types import MappingProxyType
from typing import Any

from batchwatch.errors import ApiError
from batchwatch.models import (
    BatchError,
    Counters,
    FileInfo,
    JobStatus,
    ListFilter,
    RemoteJob,
)


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """Mistral's ``CreateBatchJobRequest``."""

    endpoint: str
    model: str | None = None
    input_files: tuple[str, ...] = ()
    requests: tuple[Mapping[str, Any], ...] = ()
    metadata: Mapping[str, str] | None = None
    timeout_hours: int = 24
    agent_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"endpoint": self.endpoint, "timeout_hours": self.timeout_hours}
        if self.input_files:
            body["input_files"] = list(self.input_files)
        if self.requests:
            body["requests"] = [dict(r) for r in self.requests]
        for key in ("model", "agent_id"):
            if getattr(self, key) is not None:
                body[key] = getattr(self, key)
        if self.metadata:
            body["metadata"] = dict(self.metadata)
        return body


def list_params(flt: ListFilter, page: int, page_size: int) -> list[tuple[str, str]]:
    """The query string as Mistral expects it: ``status`` repeated, metadata flattened into
    bare keys (as the official SDKs send it), booleans as ``true``/``false``."""
    params: list[tuple[str, str]] = [
        ("page", str(page)),
        ("page_size", str(page_size)),
        ("created_by_me", "true" if flt.created_by_me else "false"),
        ("order_by", flt.order_by),
    ]
    params += [("status", status.value) for status in flt.statuses]
    if flt.model is not None:
        params.append(("model", flt.model))
    if flt.agent_id is not None:
        params.append(("agent_id", flt.agent_id))
    if flt.created_after is not None:
        stamp = flt.created_after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        params.append(("created_after", stamp))
    params += sorted(flt.metadata.items())
    return params


# ---------------------------------------------------------------------------------------
# Parsing at the edge


# A list page carries 100 jobs and a cycle reads 10,000: the checks run as two table-driven
# loops, not a call per field.
_REQUIRED: tuple[tuple[str, type], ...] = (
    ("id", str),
    ("status", str),
    ("endpoint", str),
    ("input_files", list),
    ("errors", list),
    ("created_at", int),
    ("total_requests", int),
    ("completed_requests", int),
    ("succeeded_requests", int),
    ("failed_requests", int),
)
_OPTIONAL: tuple[tuple[str, type], ...] = (
    ("model", str),
    ("agent_id", str),
    ("metadata", dict),
    ("output_file", str),
    ("error_file", str),
    ("started_at", int),
    ("completed_at", int),
)


def _checked(body: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a job: required ones present with their type (else a retryable
    ApiError), optional ones of the wrong type read as absent. A bool is not an int here."""
    fields: dict[str, Any] = {}
    for key, kind in _REQUIRED:
        value = body.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ApiError(f"job: field {key!r} is missing or has the wrong type", retryable=True)
        fields[key] = value
    for key, kind in _OPTIONAL:
        value = body.get(key)
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        fields[key] = value if ok else None
    return fields


def _req(body: Mapping[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ApiError(f"job: field {key!r} is missing or has the wrong type", retryable=True)
    return value


def _opt(body: Mapping[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    return value if isinstance(value, kind) else None


#: Metadata values that can be part of a key of ``SharedMetadata``.
_FLAT = (str, int, type(None))  # not float: 0.0 and -0.0 are equal, yet not the same
SharedMetadata = dict[tuple[tuple[str, type, Any], ...], Mapping[str, Any]]


def _shared(metadata: dict[str, Any] | None, seen: SharedMetadata | None) -> Any:
    """One read-only copy of each distinct flat metadata among the jobs parsed with the
    same ``seen``: the jobs of a list page are often tagged alike."""
    if metadata is None or seen is None:
        return metadata
    if not all(isinstance(v, _FLAT) for v in metadata.values()):
        return metadata
    # The type is part of the key: 1, 1.0 and True are equal, but not the same metadata.
    key = tuple((k, type(v), v) for k, v in metadata.items())
    found = seen.get(key)
    if found is None:
        found = seen[key] = MappingProxyType(metadata)
    return found


def parse_job(body: Any, shared_metadata: SharedMetadata | None = None) -> RemoteJob:
    """A ``BatchJob`` JSON object → ``RemoteJob``; a malformed one is a retryable ApiError
    (the next read may be whole), an unknown status becomes ``UNKNOWN``. Jobs parsed with
    one ``shared_metadata`` share equal metadata (read-only) instead of a dict each."""
    if not isinstance(body, dict):
        raise ApiError("job: response is not a JSON object", retryable=True)
    f = _checked(body)
    raw_status = intern(f["status"])
    model = f["model"]
    # 10,000 listed jobs share a handful of statuses, endpoints and models: one copy each.
    return RemoteJob(
        id=f["id"],
        status=JobStatus.parse(raw_status),
        raw_status=raw_status,
        endpoint=intern(f["endpoint"]),
        input_files=tuple(str(x) for x in f["input_files"]),
        model=intern(model) if model is not None else None,
        agent_id=f["agent_id"],
        metadata=_shared(f["metadata"], shared_metadata),
        output_file=f["output_file"],
        error_file=f["error_file"],
        errors=tuple(
            BatchError(message=str(e.get("message", "")), count=int(e.get("count", 1)))
            for e in f["errors"]
            if isinstance(e, dict)
        ),
        created_at=f["created_at"],
        started_at=f["started_at"],
        completed_at=f["completed_at"],
        counters=Counters(
            total=f["total_requests"],
            completed=f["completed_requests"],
            succeeded=f["succeeded_requests"],
            failed=f["failed_requests"],
        ),
    )


def job_to_json(job: RemoteJob) -> dict[str, Any]:
    """``RemoteJob`` → Mistral's ``BatchJob`` JSON (what the local API serves)."""
    return {
        "id": job.id,
        "object": "batch",
        "input_files": list(job.input_files),
        "metadata": dict(job.metadata) if job.metadata is not None else None,
        "endpoint": job.endpoint,
        "model": job.model,
        "agent_id": job.agent_id,
        "output_file": job.output_file,
        "error_file": job.error_file,
        "errors": [{"message": e.message, "count": e.count} for e in job.errors],
        "outputs": None,
        "status": job.raw_status,
        "created_at": job.created_at,
        "total_requests": job.counters.total,
        "completed_requests": job.counters.completed,
        "succeeded_requests": job.counters.succeeded,
        "failed_requests": job.counters.failed,
        "started_at": job.started_at,
        "completed_at": job.completed_at,
    }


def parse_file(body: Any) -> FileInfo:
    if not isinstance(body, dict):
        raise ApiError("file: response is not a JSON object", retryable=True)
    return FileInfo(
        id=_req(body, "id", str),
        filename=_req(body, "filename", str),
        bytes=int(body.get("bytes") or 0),
        purpose=str(body.get("purpose", "")),
        num_lines=_opt(body, "num_lines", int),
        created_at=_req(body, "created_at", int),
    )


def error_text(body: Any) -> str:
    """The human part of an error body: Mistral's ``message``, or FastAPI's ``detail``."""
    if isinstance(body, dict):
        for key in ("message", "detail"):
            value = body.get(key)
            if isinstance(value, str):
                return value
            if isinstance(value, list) and value and isinstance(value[0], dict):
                first = value[0]
                where = ".".join(str(p) for p in first.get("loc", []))
                return f"{where}: {first.get('msg', '')}".strip(": ")
    return str(body)[:200] if body else ""
