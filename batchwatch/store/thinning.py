"""Thinning the progress history already stored, by the rule new samples follow.

Samples stored before that rule existed (one per cycle in which a running job moved: 1,000
running jobs polled 101 times left ~100,000 rows) are thinned once, by migration 0005, as if
they had arrived one by one under ``transitions.replaces_newest``; the kept samples are
given the status their job had when they were observed, from its transitions.

Safe to run again (``transitions.thin`` keeps every sample of a thinned history), and safe
to interrupt: it runs inside the caller's transaction (the migration's), so it is undone as
a whole.

It runs on the schema as of migration 0005, where each sample is keyed by its own ``id``:
it reads and writes the ``progress`` table as that revision has it (``progress_0005``), not
through ``schema.progress``, which is the table as the newest revision has it (keyed by
(job_id, seq) since migration 0009).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Connection,
    Integer,
    String,
    bindparam,
    column,
    delete,
    func,
    select,
    table,
    update,
)

from batchwatch.models import Counters, JobStatus
from batchwatch.store.schema import UTCDateTime, transitions
from batchwatch.transitions import Point, status_at, thin

#: The ``progress`` table as migration 0005 leaves it: each sample keyed by its own ``id``.
progress_0005 = table(
    "progress",
    column("id", Integer),
    column("job_id", String),
    column("observed_at", UTCDateTime),
    column("total_requests", BigInteger),
    column("completed_requests", BigInteger),
    column("succeeded_requests", BigInteger),
    column("failed_requests", BigInteger),
    column("status", String),
)

#: Jobs whose samples are read and thinned at once: bounds memory on a history of millions.
_JOBS_PER_BATCH = 500
_IDS_PER_DELETE = 500  # well under SQLite's bound-parameter limit


@dataclass(frozen=True, slots=True)
class Thinned:
    jobs: int
    kept: int
    deleted: int


def thin_progress(conn: Connection) -> Thinned:
    """Thin every job's stored progress samples (see the module's docstring)."""
    job_ids = list(conn.execute(select(progress_0005.c.job_id).distinct()).scalars())
    deleted = 0
    for start in range(0, len(job_ids), _JOBS_PER_BATCH):
        batch = job_ids[start : start + _JOBS_PER_BATCH]
        gone, dated = _thin_batch(conn, batch)
        for chunk in range(0, len(gone), _IDS_PER_DELETE):
            ids = gone[chunk : chunk + _IDS_PER_DELETE]
            conn.execute(delete(progress_0005).where(progress_0005.c.id.in_(ids)))
        if dated:
            conn.execute(
                update(progress_0005)
                .where(progress_0005.c.id == bindparam("sample_id"))
                .values(status=bindparam("sample_status")),
                [{"sample_id": i, "sample_status": s} for i, s in dated],
            )
        deleted += len(gone)
    kept = int(conn.execute(select(func.count()).select_from(progress_0005)).scalar_one())
    return Thinned(len(job_ids), kept, deleted)


def _thin_batch(
    conn: Connection, job_ids: Sequence[str]
) -> tuple[list[int], list[tuple[int, str]]]:
    """For the samples of ``job_ids``: the ids to delete, and (id, status) of kept samples
    whose status was not stored."""
    changes: dict[str, list[tuple[datetime, JobStatus]]] = defaultdict(list)
    query = (
        select(transitions.c.job_id, transitions.c.observed_at, transitions.c.to_status)
        .where(transitions.c.job_id.in_(job_ids))
        .order_by(transitions.c.job_id, transitions.c.seq)
    )
    for job_id, at, status in conn.execute(query):
        changes[job_id].append((at, JobStatus.parse(status)))
    samples = (
        select(
            progress_0005.c.id,
            progress_0005.c.job_id,
            progress_0005.c.observed_at,
            progress_0005.c.status,
            progress_0005.c.total_requests,
            progress_0005.c.completed_requests,
            progress_0005.c.succeeded_requests,
            progress_0005.c.failed_requests,
        )
        .where(progress_0005.c.job_id.in_(job_ids))
        .order_by(progress_0005.c.job_id, progress_0005.c.id)
    )
    by_job: dict[str, list[tuple[int, Point, bool]]] = defaultdict(list)
    for sample_id, job_id, at, status, *counts in conn.execute(samples):
        known = JobStatus.parse(status) if status is not None else None
        point = Point(at, known or status_at(changes[job_id], at), Counters(*counts))
        by_job[job_id].append((sample_id, point, known is None))
    gone: list[int] = []
    dated: list[tuple[int, str]] = []
    for rows in by_job.values():
        keep = set(thin([point for _, point, _ in rows]))
        for n, (sample_id, point, undated) in enumerate(rows):
            if n not in keep:
                gone.append(sample_id)
            elif undated and point.status is not None:
                dated.append((sample_id, point.status.value))
    return gone, dated
