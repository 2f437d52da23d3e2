"""Stuck-job detection, pure: which alerts a check raises, once per condition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from batchwatch.alerts import Known, Watched, check, check_seconds
from batchwatch.config_events import AlertSettings
from batchwatch.events import EventType
from batchwatch.models import JobStatus

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
ALERTS = AlertSettings(stall_minutes=30, queued_minutes=120, deadline_fraction=0.8)


def job(status: str = "RUNNING", completed: int = 5, created: timedelta = timedelta(0)) -> Watched:
    return Watched("j", JobStatus(status), T0 - created, completed, 10, 24)


def run(steps: list[tuple[Watched, timedelta]]) -> list[list[str]]:
    """Each check's raised event types, the checks at T0 + the given offsets."""
    known: Known | None = None
    seen = []
    for watched, at in steps:
        known, raised = check(watched, known, T0 + at, ALERTS)
        seen.append([e.type.value for e in raised])
    return seen


def test_a_running_job_that_does_not_move_stalls_once() -> None:
    m = timedelta(minutes=1)
    assert run([(job(), 0 * m), (job(), 29 * m), (job(), 30 * m), (job(), 45 * m)]) == [
        [],
        [],
        ["job.stalled"],
        [],
    ]


def test_a_stall_is_cleared_when_the_job_moves_and_can_come_again() -> None:
    m = timedelta(minutes=1)
    steps = [
        (job(), 0 * m),
        (job(), 30 * m),
        (job(completed=6), 31 * m),
        (job(completed=6), 61 * m),
    ]
    assert run(steps) == [[], ["job.stalled"], [], ["job.stalled"]]


def test_a_job_queued_too_long_stalls_from_its_creation() -> None:
    queued = job("QUEUED", 0, created=timedelta(minutes=121))
    known, raised = check(queued, None, T0, ALERTS)
    assert [e.type for e in raised] == [EventType.STALLED]
    assert raised[0].data["reason"] == "queued" and raised[0].data["since"] == queued.created_at
    assert known.stalled_at == T0
    assert check(job("QUEUED", 0, created=timedelta(minutes=119)), None, T0, ALERTS)[1] == []


@pytest.mark.parametrize(
    ("status", "completed", "age_hours", "raised"),
    [
        ("RUNNING", 5, 19.3, True),  # 80% of 24 h used, requests left
        ("RUNNING", 5, 19.1, False),
        ("RUNNING", 10, 20, False),  # every request done
        ("QUEUED", 0, 20, True),
        ("CANCELLATION_REQUESTED", 5, 20, False),
    ],
)
def test_deadline_near(status: str, completed: int, age_hours: float, raised: bool) -> None:
    watched = job(status, completed, created=timedelta(hours=age_hours))
    _, found = check(watched, Known(watched.status, completed, T0), T0, ALERTS)
    events = [e for e in found if e.type is EventType.DEADLINE_NEAR]  # (a queued one stalls too)
    assert len(events) == int(raised)
    if raised:
        assert events[0].data["requests_left"] == 10 - completed
        assert events[0].data["deadline"] == watched.created_at + timedelta(hours=24)


def test_the_deadline_is_raised_once_per_job_even_as_it_moves() -> None:
    late = timedelta(hours=20)
    known, first = check(job(created=late), None, T0, ALERTS)
    known, again = check(job(completed=6, created=late), known, T0 + timedelta(minutes=1), ALERTS)
    assert [e.type for e in first] == [EventType.DEADLINE_NEAR] and again == []


def test_the_check_runs_often_enough_for_short_thresholds() -> None:
    assert check_seconds(ALERTS) == 15.0
    assert check_seconds(AlertSettings(stall_minutes=0.05)) == pytest.approx(0.75)
