"""Stuck-job detection in the database: one write transaction reads the active jobs and
what is known of them (``job_alerts``), applies ``alerts.check`` and writes back what
changed, with the events it raised: an alert and its event commit together."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select

from batchwatch.alerts import DEFAULT_TIMEOUT_HOURS, Known, Watched, check
from batchwatch.config_events import AlertSettings
from batchwatch.events import Event
from batchwatch.models import ACTIVE_STATUSES, IntentState, JobStatus
from batchwatch.store import Store
from batchwatch.store.codecs import decode_time
from batchwatch.store.schema import create_intents, job_alerts, jobs

_ACTIVE = sorted(s.value for s in ACTIVE_STATUSES)
_KNOWN_COLUMNS = (
    job_alerts.c.job_id,
    job_alerts.c.status,
    job_alerts.c.completed,
    job_alerts.c.moved_at,
    job_alerts.c.stalled_at,
    job_alerts.c.deadline_at,
)


def run_check(store: Store, now: datetime, settings: AlertSettings) -> list[Event]:
    """Check every active job; returns the alerts raised (already in the outbox)."""
    raised: list[Event] = []
    with store.write() as w:
        conn = w.conn
        active = conn.execute(
            select(
                jobs.c.id,
                jobs.c.status,
                jobs.c.created_at,
                jobs.c.completed_requests,
                jobs.c.total_requests,
                create_intents.c.body,
            )
            .select_from(
                jobs.outerjoin(
                    create_intents,
                    (create_intents.c.job_id == jobs.c.id)
                    & (create_intents.c.state == IntentState.CREATED.value),
                )
            )
            .where(jobs.c.status.in_(_ACTIVE), jobs.c.deleted_upstream_at.is_(None))
        ).all()
        known = {row[0]: _known(row) for row in conn.execute(select(*_KNOWN_COLUMNS))}
        changed: list[tuple[Any, ...]] = []
        for row in active:
            job = _watched(row)
            before = known.pop(job.job_id, None)
            after, events = check(job, before, now, settings)
            raised += events
            if after != before:
                changed.append(_row(w.bulk.time, job.job_id, after))
        gone = [*known, *(row[0] for row in changed)]
        if gone:
            conn.execute(delete(job_alerts).where(job_alerts.c.job_id.in_(gone)))
        w.bulk.insert(job_alerts, _KNOWN_COLUMNS, changed)
        w.record_events(raised)
    return raised


def _watched(row: Any) -> Watched:
    job_id, status, created_at, completed, total, body = row
    hours = body.get("timeout_hours") if isinstance(body, Mapping) else None
    return Watched(
        job_id,
        JobStatus.parse(status),
        datetime.fromtimestamp(created_at, UTC),
        int(completed),
        int(total),
        float(hours) if isinstance(hours, int | float) else DEFAULT_TIMEOUT_HOURS,
    )


def _known(row: Any) -> Known:
    moved_at = decode_time(row[3])
    assert moved_at is not None  # (NOT NULL)
    return Known(
        JobStatus.parse(row[1]), int(row[2]), moved_at, decode_time(row[4]), decode_time(row[5])
    )


def _row(time: Any, job_id: str, k: Known) -> tuple[Any, ...]:
    return (
        job_id,
        k.status.value,
        k.completed,
        time(k.moved_at),
        time(k.stalled_at),
        time(k.deadline_at),
    )


def oldest_by_status(store: Store) -> dict[str, int]:
    """The creation time (Unix seconds) of the oldest tracked job in each active status."""
    query = (
        select(jobs.c.status, func.min(jobs.c.created_at))
        .where(jobs.c.status.in_(_ACTIVE), jobs.c.deleted_upstream_at.is_(None))
        .group_by(jobs.c.status)
    )
    return {str(status): int(created) for status, created in store._rows(query)}
