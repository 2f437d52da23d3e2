"""Rows and records: the columns a job, a transition and a progress sample are stored in,
and the one way each is turned back into its record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from sys import intern
from types import MappingProxyType
from typing import Any

from sqlalchemy import (
    JSON,
    Dialect,
    RowMapping,
    Select,
    String,
    bindparam,
    select,
    type_coerce,
)

from batchwatch.models import (
    BatchError,
    Counters,
    JobSource,
    JobStatus,
    ProgressSample,
    RemoteJob,
    StoredJob,
    Transition,
)
from batchwatch.store.codecs import decode_json, decode_time, json_text
from batchwatch.store.schema import UTCDateTime, jobs, progress, transitions

# ---- row mapping -----------------------------------------------------------------------


#: What Mistral reports of a job, as stored (all but the status, which an UNKNOWN keeps).
_SNAPSHOT_COLUMNS = (
    jobs.c.raw_status,
    jobs.c.endpoint,
    jobs.c.model,
    jobs.c.agent_id,
    jobs.c.input_files,
    jobs.c.job_metadata,
    jobs.c.output_file,
    jobs.c.error_file,
    jobs.c.errors,
    jobs.c.created_at,
    jobs.c.started_at,
    jobs.c.completed_at,
    jobs.c.total_requests,
    jobs.c.completed_requests,
    jobs.c.succeeded_requests,
    jobs.c.failed_requests,
    jobs.c.transition_count,
)
_NEW_JOB_COLUMNS = (
    jobs.c.id,
    jobs.c.status,
    *_SNAPSHOT_COLUMNS,
    jobs.c.source,
    jobs.c.first_seen_at,
    jobs.c.last_seen_at,
)
_JOB_COLUMNS = (*_NEW_JOB_COLUMNS, jobs.c.deleted_upstream_at)
_TRANSITION_COLUMNS = (
    transitions.c.job_id,
    transitions.c.seq,
    transitions.c.from_status,
    transitions.c.to_status,
    transitions.c.observed_at,
    transitions.c.last_seen_before,
    transitions.c.source,
)
_PROGRESS_COLUMNS = (
    progress.c.job_id,
    progress.c.observed_at,
    progress.c.total_requests,
    progress.c.completed_requests,
    progress.c.succeeded_requests,
    progress.c.failed_requests,
)


def _snapshot(job: RemoteJob, transition_count: int) -> tuple[Any, ...]:
    """``job`` as the driver values of ``_SNAPSHOT_COLUMNS``."""
    c = job.counters
    return (
        job.raw_status,
        job.endpoint,
        job.model,
        job.agent_id,
        json_text(list(job.input_files)),
        json_text(dict(job.metadata) if job.metadata is not None else None),
        job.output_file,
        job.error_file,
        json_text([{"message": e.message, "count": e.count} for e in job.errors]),
        job.created_at,
        job.started_at,
        job.completed_at,
        c.total,
        c.completed,
        c.succeeded,
        c.failed,
        transition_count,
    )


class _JobDecoder:
    """Rows of ``_JOB_COLUMNS`` as the driver returned them → ``StoredJob``.

    One decoder serves one load. Rows of one load share most timestamps (every job seen in
    the last cycle has its instant) and often their metadata, so each distinct text is
    parsed once."""

    def __init__(self) -> None:
        self._times: dict[Any, datetime | None] = {}
        self._metadata: dict[Any, Any] = {}

    def time(self, value: Any) -> datetime | None:
        if value in self._times:
            return self._times[value]
        decoded = self._times[value] = decode_time(value)
        return decoded

    def _meta(self, value: Any) -> Any:
        if not isinstance(value, str):
            return value  # PostgreSQL: already decoded, one object per row
        found = self._metadata.get(value, _MISSING)
        if found is _MISSING:
            decoded = decode_json(value)
            # Shared between the jobs that have it: read-only from here on.
            found = self._metadata[value] = (
                MappingProxyType(decoded) if isinstance(decoded, dict) else decoded
            )
        return found

    def __call__(self, row: Sequence[Any]) -> StoredJob:
        (
            job_id, status, raw_status, endpoint, model, agent_id, input_files, metadata,
            output_file, error_file, errors, created_at, started_at, completed_at,
            total, completed, succeeded, failed, transition_count,
            source, first_seen_at, last_seen_at, deleted_upstream_at,
        ) = row  # fmt: skip
        remote = RemoteJob(
            job_id,
            JobStatus.parse(status),
            intern(raw_status),  # a load's 10,000 rows share these few strings, not a copy each
            intern(endpoint),
            tuple(decode_json(input_files)),
            intern(model) if model is not None else None,
            agent_id,
            self._meta(metadata),
            output_file,
            error_file,
            tuple(BatchError(e["message"], e.get("count", 1)) for e in decode_json(errors)),
            created_at,
            started_at,
            completed_at,
            Counters(total, completed, succeeded, failed),
        )
        first, last = self.time(first_seen_at), self.time(last_seen_at)
        assert first is not None
        assert last is not None
        return StoredJob(
            remote, _SOURCES[source], first, last, transition_count, self.time(deleted_upstream_at)
        )


_MISSING = object()
_SOURCES = {s.value: s for s in JobSource}


def _counters(row: RowMapping) -> Counters:
    return Counters(
        total=row["total_requests"],
        completed=row["completed_requests"],
        succeeded=row["succeeded_requests"],
        failed=row["failed_requests"],
    )


def row_to_job(row: RowMapping) -> StoredJob:
    remote = RemoteJob(
        id=row["id"],
        status=JobStatus.parse(row["status"]),
        raw_status=row["raw_status"],
        endpoint=row["endpoint"],
        input_files=tuple(row["input_files"]),
        model=row["model"],
        agent_id=row["agent_id"],
        metadata=row["job_metadata"],
        output_file=row["output_file"],
        error_file=row["error_file"],
        errors=tuple(BatchError(e["message"], e.get("count", 1)) for e in row["errors"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        counters=_counters(row),
    )
    return StoredJob(
        remote=remote,
        source=JobSource(row["source"]),
        first_seen_at=row["first_seen_at"],
        last_seen_at=row["last_seen_at"],
        transition_count=row["transition_count"],
        deleted_upstream_at=row["deleted_upstream_at"],
    )


# ---- the API's reads: statements, compiled once per dialect, and their rows decoded ---------

#: ``_JOB_COLUMNS`` (the order ``_JobDecoder`` reads) with the JSON and timestamp columns
#: left as the driver returns them: ``_JobDecoder`` decodes them faster than SQLAlchemy.
_JOB_COLUMNS_AS_STORED = tuple(
    type_coerce(c, String()) if isinstance(c.type, JSON | UTCDateTime) else c for c in _JOB_COLUMNS
)
_GET_JOB = select(*_JOB_COLUMNS).where(jobs.c.id == bindparam("job_id"))
_HAS_JOB = select(jobs.c.id).where(jobs.c.id == bindparam("job_id"))
_TRANSITION_READ = (transitions.c.id, *_TRANSITION_COLUMNS)
# (job_id, seq) is unique: its index serves this, in order.
_JOB_TRANSITIONS = (
    select(*_TRANSITION_READ)
    .where(transitions.c.job_id == bindparam("job_id"))
    .order_by(transitions.c.seq)
)
_FEED = (
    select(*_TRANSITION_READ)
    .where(transitions.c.id > bindparam("after"))
    .order_by(transitions.c.id)
    .limit(bindparam("limit"))
)
_JOB_PROGRESS = (
    select(progress.c.id, *_PROGRESS_COLUMNS)
    .where(progress.c.job_id == bindparam("job_id"))
    .order_by(progress.c.id)
)


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    order: tuple[str, ...] | None  # the parameters' order (SQLite's ?), None when named
    defaults: dict[str, Any]  # values SQLAlchemy bound itself (SQLite's OFFSET 0)


_COMPILED: dict[tuple[str, int], _Compiled] = {}


def _compiled(dialect: Dialect, stmt: Select[Any]) -> _Compiled:
    """``stmt`` (one of the module's own statements) as SQL for the driver of ``dialect``."""
    key = (dialect.name, id(stmt))
    found = _COMPILED.get(key)
    if found is None:
        c = stmt.compile(dialect=dialect)
        order = tuple(c.positiontup or ()) if c.positional else None
        found = _COMPILED[key] = _Compiled(str(c), order, dict(c.params))
    return found


def _transition_of(row: Sequence[Any]) -> Transition:
    """A row of ``_TRANSITION_READ`` as the driver returned it."""
    id_, job_id, seq, from_status, to_status, observed_at, last_seen_before, source = row
    observed = decode_time(observed_at)
    assert observed is not None
    return Transition(
        id=id_,
        job_id=job_id,
        seq=seq,
        from_status=JobStatus.parse(from_status) if from_status else None,
        to_status=JobStatus.parse(to_status),
        observed_at=observed,
        last_seen_before=decode_time(last_seen_before),
        source=source,
    )


def _progress_of(row: Sequence[Any]) -> ProgressSample:
    """A row of ``_JOB_PROGRESS`` as the driver returned it."""
    id_, job_id, observed_at, total, completed, succeeded, failed = row
    observed = decode_time(observed_at)
    assert observed is not None
    return ProgressSample(
        id=id_,
        job_id=job_id,
        observed_at=observed,
        counters=Counters(total, completed, succeeded, failed),
    )
