"""Rows and records: the columns a job, a transition and a progress sample are stored in,
and the one way each is turned into its row and back.

A job's shape is stated once: every field of ``RemoteJob`` is stored in the ``jobs`` column
of its own name, as it is, unless ``_CODECS`` says otherwise. Adding a field to the record
and its column to the table is all a new job field needs here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from functools import cache
from types import MappingProxyType
from typing import Any

from sqlalchemy import JSON, Column, ColumnElement, Text, cast, type_coerce
from sqlalchemy.types import NullType

from batchwatch.models import (
    BatchError,
    Counters,
    JobOrigin,
    JobStatus,
    ProgressSample,
    RemoteJob,
    StoredJob,
    Transition,
)
from batchwatch.store.codecs import decode_json, decode_time, json_text
from batchwatch.store.schema import jobs, progress, transitions

# ---- a job's shape -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Codec:
    """How one ``RemoteJob`` field is stored: in ``columns``, as the driver values ``encode``
    makes of it; ``decode`` takes those columns' values (as either driver returns them, or
    as SQLAlchemy does) and gives the field back (None: the one value is the field)."""

    columns: tuple[str, ...]
    encode: Callable[[Any], tuple[Any, ...]]
    decode: Callable[..., Any] | None
    #: Whether many jobs hold the same value (a status, a metadata, an error list): the
    #: decoder of one load then decodes each distinct stored value once and shares it.
    shared: bool = False


def _encode_metadata(value: Mapping[str, Any] | None) -> tuple[str]:
    return (json_text(dict(value) if value is not None else None),)


def _encode_errors(value: tuple[BatchError, ...]) -> tuple[str]:
    return (json_text([{"message": e.message, "count": e.count} for e in value]),)


def _decode_errors(value: Any) -> tuple[BatchError, ...]:
    return tuple(BatchError(e["message"], e.get("count", 1)) for e in decode_json(value))


def _decode_metadata(value: Any) -> Mapping[str, Any] | None:
    # Read-only: one decoded value is shared by every job of a load that stores it.
    decoded = decode_json(value)
    return None if decoded is None else MappingProxyType(decoded)


def _encode_counters(c: Counters) -> tuple[int, int, int, int]:
    return (c.total, c.completed, c.succeeded, c.failed)


def _as_is(value: Any) -> tuple[Any]:
    return (value,)


#: The ``RemoteJob`` fields not stored as they are in the column of their own name.
_CODECS: dict[str, _Codec] = {
    "status": _Codec(("status",), lambda s: (s.value,), JobStatus.parse, shared=True),
    "input_files": _Codec(
        ("input_files",), lambda v: (json_text(list(v)),), lambda v: tuple(decode_json(v))
    ),
    # A column cannot be named ``metadata`` in SQLAlchemy.
    "metadata": _Codec(("job_metadata",), _encode_metadata, _decode_metadata, shared=True),
    "errors": _Codec(("errors",), _encode_errors, _decode_errors, shared=True),
    # As they are, but held once per load: jobs share a handful of each.
    **{
        name: _Codec((name,), _as_is, None, shared=True)
        for name in ("raw_status", "endpoint", "model", "agent_id", "provider")
    },
    "counters": _Codec(
        ("total_requests", "completed_requests", "succeeded_requests", "failed_requests"),
        _encode_counters,
        Counters,
    ),
}


def _codec(name: str) -> _Codec:
    return _CODECS.get(name) or _Codec((name,), _as_is, None)


#: Every field of ``RemoteJob`` but the two a write sets on its own (the id is the key; an
#: UNKNOWN observation keeps the stored status), with its codec.
_SNAPSHOT_FIELDS = tuple(
    (f.name, _codec(f.name)) for f in fields(RemoteJob) if f.name not in ("id", "status")
)
#: What Mistral reports of a job, as stored, and the count that moves with every snapshot.
_SNAPSHOT_COLUMNS: tuple[Column[Any], ...] = (
    *(jobs.c[name] for _, codec in _SNAPSHOT_FIELDS for name in codec.columns),
    jobs.c.transition_count,
)
_NEW_JOB_COLUMNS = (
    jobs.c.id,
    jobs.c.status,
    *_SNAPSHOT_COLUMNS,
    jobs.c.origin,
    jobs.c.first_seen_at,
    jobs.c.last_seen_at,
)
#: A whole job row: the ``RemoteJob`` fields, then (its last five) ``StoredJob``'s own.
_JOB_COLUMNS = (*_NEW_JOB_COLUMNS, jobs.c.deleted_upstream_at)


def _as_stored(column: Column[Any]) -> ColumnElement[Any]:
    """``column`` selected as the driver returns its stored form (JSON as its text, a
    timestamp as SQLite's text or psycopg's datetime), not decoded by SQLAlchemy for every
    row: ``_JobDecoder`` decodes a value many rows share once."""
    if isinstance(column.type, JSON):
        return cast(column, Text).label(column.name)
    return type_coerce(column, NullType()).label(column.name)


#: ``_JOB_COLUMNS`` as a read selects them, for ``_JobDecoder``. Measured in one process on
#: figure 7's list read (a 100-job ``status=SUCCESS`` page of 5,000 jobs): ``list_jobs``
#: 3.8-4.3 ms with SQLAlchemy decoding each row's JSON and timestamps, 2.8 ms so.
_JOB_READ = tuple(_as_stored(c) for c in _JOB_COLUMNS)


def _snapshot(job: RemoteJob, transition_count: int) -> tuple[Any, ...]:
    """``job`` as the driver values of ``_SNAPSHOT_COLUMNS``."""
    values: list[Any] = []
    for name, codec in _SNAPSHOT_FIELDS:
        values += codec.encode(getattr(job, name))
    values.append(transition_count)
    return tuple(values)


def _reading_plan() -> tuple[tuple[int, int, Callable[..., Any] | None, bool], ...]:
    """For each ``RemoteJob`` field in order: the slice of a ``_JOB_COLUMNS`` row that holds
    it, its decoder (None: the one value is the field) and whether its values are shared."""
    positions = {column.name: n for n, column in enumerate(_JOB_COLUMNS)}
    plan = []
    for f in fields(RemoteJob):
        codec = _codec(f.name)
        start, stop = positions[codec.columns[0]], positions[codec.columns[-1]] + 1
        # A field's columns are adjacent in the row: ``_SNAPSHOT_COLUMNS`` lists them so.
        assert [positions[c] for c in codec.columns] == list(range(start, stop))
        assert not codec.shared or stop == start + 1  # (a shared value is one column's)
        plan.append((start, stop, codec.decode, codec.shared))
    return tuple(plan)


_READING_PLAN = _reading_plan()


class _JobDecoder:
    """Rows of ``_JOB_COLUMNS`` → ``StoredJob``: the one decoder of a job row, for rows as
    either driver returns them (``Bulk.select_in``) or as SQLAlchemy does (the reads).

    One decoder serves one load. Rows of one load share most values (every job seen in the
    last cycle has its instant; jobs are tagged and fail alike), so each distinct timestamp
    and each distinct value of a shared field is decoded once, and held once.
    Measured (`python -m tests.benchmarks.run --only writes,memory`): loading 10,000 rows
    took 0.20 s without it and 0.12 s with it on SQLite (0.25 s and 0.12 s on PostgreSQL),
    and the daemon's RSS peak fell from 101.9 MB, past the 100 MB target, to 95.9 MB."""

    def __init__(self) -> None:
        #: Each distinct timestamp of the load, decoded once.
        self.time: Callable[[Any], datetime | None] = cache(decode_time)
        self._shared: dict[tuple[Callable[..., Any] | None, str], Any] = {}

    def _decode_shared(self, decode: Callable[..., Any] | None, value: Any) -> Any:
        if not isinstance(value, str):  # (None, or JSON that SQLAlchemy decoded already)
            return value if decode is None else decode(value)
        key = (decode, value)
        if key in self._shared:
            return self._shared[key]
        decoded = self._shared[key] = value if decode is None else decode(value)
        return decoded

    def __call__(self, row: Sequence[Any]) -> StoredJob:
        # (``_READING_PLAN`` is in the order of ``RemoteJob``'s fields.)
        remote = RemoteJob(
            *[
                self._decode_shared(decode, row[start])
                if shared
                else row[start]
                if decode is None
                else decode(*row[start:stop])
                for start, stop, decode, shared in _READING_PLAN
            ]
        )
        transition_count, origin, first_seen_at, last_seen_at, deleted_upstream_at = row[-5:]
        first, last = self.time(first_seen_at), self.time(last_seen_at)
        assert first is not None
        assert last is not None
        return StoredJob(
            remote, JobOrigin(origin), first, last, transition_count, self.time(deleted_upstream_at)
        )


# ---- transitions and progress samples ----------------------------------------------------

_TRANSITION_COLUMNS = (
    transitions.c.job_id,
    transitions.c.seq,
    transitions.c.from_status,
    transitions.c.to_status,
    transitions.c.observed_at,
    transitions.c.last_seen_before,
    transitions.c.source,
    transitions.c.from_provider_status,
    transitions.c.to_provider_status,
)
_PROGRESS_COLUMNS = (
    progress.c.job_id,
    progress.c.observed_at,
    progress.c.total_requests,
    progress.c.completed_requests,
    progress.c.succeeded_requests,
    progress.c.failed_requests,
)
#: What a read selects: the transition's id (the feed's cursor) or the sample's number within
#: its job, then the columns users read.
_TRANSITION_READ = (transitions.c.id, *_TRANSITION_COLUMNS)
_PROGRESS_READ = (progress.c.seq, *_PROGRESS_COLUMNS)


def _transition_of(row: Sequence[Any]) -> Transition:
    """A row of ``_TRANSITION_READ``."""
    id_, job_id, seq, from_status, to_status, observed_at, last_seen_before, source = row[:8]
    from_provider_status, to_provider_status = row[8:]
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
        from_provider_status=from_provider_status,
        to_provider_status=to_provider_status,
    )


def _progress_of(row: Sequence[Any]) -> ProgressSample:
    """A row of ``_PROGRESS_READ``."""
    seq, job_id, observed_at, total, completed, succeeded, failed = row
    observed = decode_time(observed_at)
    assert observed is not None
    return ProgressSample(
        seq=seq,
        job_id=job_id,
        observed_at=observed,
        counters=Counters(total, completed, succeeded, failed),
    )
