"""Stuck-job detection, pure: from an active job and what was known of it, which alerts to
raise. ``job.stalled`` when a RUNNING job's completed count has not moved for
``alerts.stall_minutes`` or a job has been QUEUED for longer than ``alerts.queued_minutes``;
``job.deadline_near`` when a job with requests left has used ``alerts.deadline_fraction`` of
its ``timeout_hours``. Each is raised once per condition: a stall is cleared when the job
moves (its count or its status), and can then be raised again; the deadline is raised once
per job.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from batchwatch.config_events import AlertSettings
from batchwatch.events import Event, EventType, new_event
from batchwatch.models import JobStatus

#: Mistral's default ``timeout_hours``, for a job whose create body batchwatch did not see.
DEFAULT_TIMEOUT_HOURS = 24


@dataclass(frozen=True, slots=True)
class Watched:
    """An active job as the check sees it."""

    job_id: str
    status: JobStatus
    created_at: datetime
    completed: int
    total: int
    timeout_hours: float


@dataclass(frozen=True, slots=True)
class Known:
    """What the check keeps of a job between runs."""

    status: JobStatus
    completed: int
    moved_at: datetime
    stalled_at: datetime | None = None
    deadline_at: datetime | None = None


def check(
    job: Watched, known: Known | None, now: datetime, settings: AlertSettings
) -> tuple[Known, list[Event]]:
    """What is known of ``job`` after this check, and the alerts it raises."""
    if known is None or known.status != job.status or known.completed != job.completed:
        deadline_at = known.deadline_at if known is not None else None
        known = Known(job.status, job.completed, now, None, deadline_at)
    raised: list[Event] = []
    if known.stalled_at is None and (data := _stalled(job, known, now, settings)):
        known = replace(known, stalled_at=now)
        raised.append(new_event(EventType.STALLED, job.job_id, now, data))
    if known.deadline_at is None and (data := _deadline_near(job, now, settings)):
        known = replace(known, deadline_at=now)
        raised.append(new_event(EventType.DEADLINE_NEAR, job.job_id, now, data))
    return known, raised


def _stalled(
    job: Watched, known: Known, now: datetime, settings: AlertSettings
) -> dict[str, object] | None:
    if job.status is JobStatus.QUEUED:
        if now - job.created_at >= timedelta(minutes=settings.queued_minutes):
            return {"reason": "queued", "status": job.status.value, "since": job.created_at}
        return None
    if job.status is JobStatus.RUNNING and now - known.moved_at >= timedelta(
        minutes=settings.stall_minutes
    ):
        return {
            "reason": "no_progress",
            "status": job.status.value,
            "since": known.moved_at,
            "completed": job.completed,
            "total": job.total,
        }
    return None


def _deadline_near(
    job: Watched, now: datetime, settings: AlertSettings
) -> dict[str, object] | None:
    if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING) or job.completed >= job.total > 0:
        return None
    timeout = timedelta(hours=job.timeout_hours)
    if now - job.created_at < timeout * settings.deadline_fraction:
        return None
    return {
        "status": job.status.value,
        "timeout_hours": job.timeout_hours,
        "deadline": job.created_at + timeout,
        "requests_left": max(job.total - job.completed, 0),
    }


def check_seconds(settings: AlertSettings) -> float:
    """How often the check runs: often enough that an alert comes within a quarter of its
    threshold, at most every 15 seconds."""
    shortest = min(settings.stall_minutes, settings.queued_minutes) * 60
    return max(0.2, min(15.0, shortest / 4))
