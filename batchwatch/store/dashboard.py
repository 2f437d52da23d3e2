"""The dashboard's reads that no API route needs: what ended lately, the active jobs with a
standing alert, the newest events, and a job's progress thinned for its curve."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from batchwatch.events import Event
from batchwatch.models import ACTIVE_STATUSES, TERMINAL_STATUSES, ProgressSample
from batchwatch.store import Store
from batchwatch.store.codecs import decode_time
from batchwatch.store.events import _READ, _event
from batchwatch.store.rows import _PROGRESS_READ, _progress_of
from batchwatch.store.schema import events, job_alerts, jobs, progress

_ACTIVE = sorted(s.value for s in ACTIVE_STATUSES)
_TERMINAL = sorted(s.value for s in TERMINAL_STATUSES)


@dataclass(frozen=True, slots=True)
class Ended:
    """Jobs that ended since a moment, and their requests."""

    jobs: int
    succeeded: int
    failed: int


@dataclass(frozen=True, slots=True)
class Alert:
    """An active job with a standing alert: stalled since, or its deadline near since."""

    job_id: str
    status: str
    model: str | None
    completed: int
    total: int
    stalled_at: datetime | None
    deadline_at: datetime | None


def ended_since(store: Store, since: int) -> Ended:
    """The jobs that ended at or after ``since`` (Unix seconds, Mistral's ``completed_at``)
    and their succeeded and failed requests. One pass over the jobs (100,000: a few ms)."""
    query = select(
        func.count(),
        func.coalesce(func.sum(jobs.c.succeeded_requests), 0),
        func.coalesce(func.sum(jobs.c.failed_requests), 0),
    ).where(jobs.c.status.in_(_TERMINAL), jobs.c.completed_at >= since)
    row = store._rows(query)[0]
    return Ended(int(row[0]), int(row[1]), int(row[2]))


def alerts(store: Store) -> list[Alert]:
    """Active jobs whose ``job.stalled`` or ``job.deadline_near`` still stands, the
    stalled first. Read from ``job_alerts``, the state those events are raised from (a row
    per active job, a stall cleared when the job moves), rather than from the events
    table, which has no index by type and grows without bound."""
    query = (
        select(
            jobs.c.id,
            jobs.c.status,
            jobs.c.model,
            jobs.c.completed_requests,
            jobs.c.total_requests,
            job_alerts.c.stalled_at,
            job_alerts.c.deadline_at,
        )
        .select_from(job_alerts.join(jobs, jobs.c.id == job_alerts.c.job_id))
        .where(
            jobs.c.status.in_(_ACTIVE),
            (job_alerts.c.stalled_at.is_not(None)) | (job_alerts.c.deadline_at.is_not(None)),
        )
        .limit(200)
    )
    found = [
        Alert(r[0], r[1], r[2], int(r[3]), int(r[4]), decode_time(r[5]), decode_time(r[6]))
        for r in store._rows(query)
    ]
    return sorted(found, key=lambda a: (a.stalled_at is None, a.job_id))


def newest_events(store: Store, before: int | None, limit: int) -> list[Event]:
    """The events before ``before`` (a ``seq``; None: the newest), newest first."""
    query = select(*_READ).order_by(events.c.seq.desc()).limit(limit)
    if before is not None:
        query = query.where(events.c.seq < before)
    return [_event(row) for row in store._rows(query)]


def progress_sampled(store: Store, job_id: str, limit: int) -> tuple[int, list[ProgressSample]]:
    """How many progress samples the job has, and at most about ``limit`` of them, evenly
    spread, the first and the last kept, oldest first. Chosen by the database: reading and
    decoding all 10,000 samples of a long job cost its page 235 ms (figure 11), the
    sampled read a few ms."""
    count_query = select(func.count()).where(progress.c.job_id == job_id)
    with store.reading() as conn:
        count = int(conn.execute(count_query).scalar_one())
        if count <= limit:
            rows = conn.execute(
                select(*_PROGRESS_READ).where(progress.c.job_id == job_id).order_by(progress.c.seq)
            ).all()
            return count, [_progress_of(r) for r in rows]
        step = -(-(count - 1) // (limit - 1))  # ceiling: at most ``limit`` rows
        numbered = (
            select(*_PROGRESS_READ, func.row_number().over(order_by=progress.c.seq).label("rn"))
            .where(progress.c.job_id == job_id)
            .subquery()
        )
        kept = (
            select(*(c for c in numbered.c if c.name != "rn"))
            .where(((numbered.c.rn - 1) % step == 0) | (numbered.c.rn == count))
            .order_by(numbered.c.seq)
        )
        rows = conn.execute(kept).all()
    return count, [_progress_of(r) for r in rows]
