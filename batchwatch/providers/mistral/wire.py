"""Mistral's JSON shapes, at the edge: a job's fields defined once, responses parsed into
typed records, records written back as Mistral's JSON.

Pure, and free of pydantic (a CLI command would pay about 100 ms to import it): the
local API builds its response model from ``JOB_FIELDS`` (``api/schemas.py``), and the
create body, which only the daemon validates, is ``schemas.CreateBatchJobIn``. A malformed
job becomes a retryable ``ApiError``; an unknown status string becomes
``JobStatus.UNKNOWN`` with the raw string kept.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from operator import attrgetter
from types import NoneType, UnionType
from typing import Any, Literal, get_args, get_origin

from batchwatch.errors import ApiError
from batchwatch.models import (
    MAX_COUNT,
    BatchError,
    Counters,
    FileInfo,
    JobStatus,
    ListFilter,
    RemoteJob,
)

# ---------------------------------------------------------------------------------------
# A job's JSON: Mistral's ``BatchJob``


@dataclass(frozen=True, slots=True)
class JobField:
    """One key of Mistral's ``BatchJob`` JSON."""

    key: str
    #: The value's type as a type hint: parsing checks its outer JSON type, and the local
    #: API publishes it whole in its OpenAPI schema, where Mistral's SDK reads it.
    hint: Any
    #: The value a ``RemoteJob`` gives the key (``job_to_json``).
    value: Callable[[RemoteJob], Any]
    #: Mistral always sends it: absent or of the wrong type, the job is malformed. An
    #: optional key of the wrong type reads as absent.
    required: bool = True
    #: What an absent optional key means, as Mistral's schema says.
    default: Any = None


def _const(value: Any) -> Callable[[RemoteJob], Any]:
    return lambda job: value


#: The one definition of a job's JSON, in Mistral's order: ``parse_job`` checks these keys,
#: ``job_to_json`` writes them, the local API's response model is made of them. A new
#: field is one line here (plus its ``RemoteJob`` field, read in ``parse_job``).
JOB_FIELDS: tuple[JobField, ...] = (
    JobField("id", str, attrgetter("id")),
    JobField("object", Literal["batch"], _const("batch"), required=False, default="batch"),
    JobField("input_files", list[str], lambda job: list(job.input_files)),
    JobField(
        "metadata",
        dict[str, Any] | None,
        lambda job: dict(job.metadata) if job.metadata is not None else None,
        required=False,
    ),
    JobField("endpoint", str, attrgetter("endpoint")),
    JobField("model", str | None, attrgetter("model"), required=False),
    JobField("agent_id", str | None, attrgetter("agent_id"), required=False),
    JobField("output_file", str | None, attrgetter("output_file"), required=False),
    JobField("error_file", str | None, attrgetter("error_file"), required=False),
    JobField(
        "errors",
        list[BatchError],
        lambda job: [{"message": e.message, "count": e.count} for e in job.errors],
    ),
    # Never filled by batchwatch: the outputs of an inline job are in its output file.
    JobField("outputs", list[dict[str, Any]] | None, _const(None), required=False),
    JobField("status", str, attrgetter("raw_status")),
    JobField("created_at", int, attrgetter("created_at")),
    JobField("total_requests", int, attrgetter("counters.total")),
    JobField("completed_requests", int, attrgetter("counters.completed")),
    JobField("succeeded_requests", int, attrgetter("counters.succeeded")),
    JobField("failed_requests", int, attrgetter("counters.failed")),
    JobField("started_at", int | None, attrgetter("started_at"), required=False),
    JobField("completed_at", int | None, attrgetter("completed_at"), required=False),
)


def _json_type(hint: Any) -> type:
    """The outer JSON type a hint asks for: ``str`` for ``Literal["batch"]``, ``list`` for
    ``list[str]``, ``dict`` for ``dict[str, Any] | None``."""
    if isinstance(hint, UnionType):
        hint = next(arg for arg in get_args(hint) if arg is not NoneType)
    if get_origin(hint) is Literal:
        return type(get_args(hint)[0])
    origin = get_origin(hint)
    return origin if isinstance(origin, type) else hint


# A list page carries 100 jobs and a cycle reads 10,000: the checks run as two table-driven
# loops, not a call per field.
_REQUIRED = tuple((f.key, _json_type(f.hint)) for f in JOB_FIELDS if f.required)
_OPTIONAL = tuple((f.key, _json_type(f.hint)) for f in JOB_FIELDS if not f.required)
_WRITERS = tuple((f.key, f.value) for f in JOB_FIELDS)
_COUNTS = ("total_requests", "completed_requests", "succeeded_requests", "failed_requests")


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


# The few values many jobs share (status, endpoint, model) are held once in the process
# (``sys.intern``). Figure 5 (``python -m tests.benchmarks.run --only memory``, 10,000
# active jobs): a cycle's Python memory at its peak 18.1 -> 15.9 MB (tracemalloc, ``--profile``),
# the daemon's RSS peak 103.6 -> 101.2 MB. (Interning job ids as well, to share them with
# the row cache and the set of active ids, saved nothing measurable: 104.5 MB.)
def _shared(value: str | None) -> str | None:
    return None if value is None else sys.intern(value)


def parse_job(body: Any) -> RemoteJob:
    """A ``BatchJob`` JSON object → ``RemoteJob``; a malformed one is a retryable ApiError
    (the next read may be whole), an unknown status becomes ``UNKNOWN``."""
    if not isinstance(body, dict):
        raise ApiError("job: response is not a JSON object", retryable=True)
    f = _checked(body)
    for key in _COUNTS:
        if not 0 <= f[key] <= MAX_COUNT:
            raise ApiError(f"job: field {key!r} is out of range: {f[key]}", retryable=True)
    raw_status = sys.intern(f["status"])
    return RemoteJob(
        id=f["id"],
        status=JobStatus.parse(raw_status),
        raw_status=raw_status,
        endpoint=sys.intern(f["endpoint"]),
        input_files=tuple(str(x) for x in f["input_files"]),
        model=_shared(f["model"]),
        agent_id=_shared(f["agent_id"]),
        metadata=f["metadata"],
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


def parse_outputs(body: Any) -> list[Any]:
    """The ``outputs`` of a job read with ``?inline=true``: a list of result lines (objects
    in the output file's shape); a missing or null one is empty, anything else malformed."""
    outputs = body.get("outputs") if isinstance(body, dict) else None
    if outputs is None:
        return []
    if not isinstance(outputs, list):
        raise ApiError("job: 'outputs' is not a list", retryable=True)
    return outputs


def job_to_json(job: RemoteJob) -> dict[str, Any]:
    """``RemoteJob`` → Mistral's ``BatchJob`` JSON, every key of ``JOB_FIELDS`` in order
    (what the local API and ``batchwatch jobs --json`` answer)."""
    return {key: value(job) for key, value in _WRITERS}


# ---------------------------------------------------------------------------------------
# Listing, files and errors


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


def _req(body: Mapping[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ApiError(f"file: field {key!r} is missing or has the wrong type", retryable=True)
    return value


def _opt(body: Mapping[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    return value if isinstance(value, kind) else None


def parse_file(body: Any) -> FileInfo:
    """Mistral's file object (an upload's answer) → ``FileInfo``."""
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
