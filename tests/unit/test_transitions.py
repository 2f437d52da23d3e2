"""The pure transition rules, from tables of cases and one property."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchwatch.models import (
    Counters,
    JobOrigin,
    JobStatus,
    StoredJob,
    Transition,
    status_rank,
)
from batchwatch.transitions import (
    Point,
    departed,
    plan,
    redundant,
    replaces_newest,
    status_at,
    thin,
)
from tests.helpers import remote

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=1)
S = JobStatus


def stored(status: str, count: int = 2, completed: int = 0) -> StoredJob:
    return StoredJob(
        remote=remote(status, completed=completed),
        origin=JobOrigin.DISCOVERED,
        first_seen_at=T0,
        last_seen_at=T0,
        transition_count=count,
    )


@pytest.mark.parametrize(
    ("before", "observed", "expected"),
    [
        # first sighting: from_status is None, whatever the status
        (None, "QUEUED", (None, S.QUEUED)),
        (None, "SUCCESS", (None, S.SUCCESS)),
        # forward moves are recorded
        ("QUEUED", "RUNNING", (S.QUEUED, S.RUNNING)),
        ("QUEUED", "SUCCESS", (S.QUEUED, S.SUCCESS)),
        ("RUNNING", "CANCELLATION_REQUESTED", (S.RUNNING, S.CANCELLATION_REQUESTED)),
        ("CANCELLATION_REQUESTED", "CANCELLED", (S.CANCELLATION_REQUESTED, S.CANCELLED)),
        ("CANCELLATION_REQUESTED", "SUCCESS", (S.CANCELLATION_REQUESTED, S.SUCCESS)),
        ("RUNNING", "TIMEOUT_EXCEEDED", (S.RUNNING, S.TIMEOUT_EXCEEDED)),
        # the same status again is no transition
        ("RUNNING", "RUNNING", None),
        ("SUCCESS", "SUCCESS", None),
        # a stale page (older status) never records a move backwards
        ("RUNNING", "QUEUED", None),
        ("SUCCESS", "RUNNING", None),
        ("CANCELLATION_REQUESTED", "RUNNING", None),
        # a terminal status is never left, not even for another terminal one
        ("SUCCESS", "FAILED", None),
        # an unknown status string is never a transition
        ("RUNNING", "PAUSED", None),
        (None, "PAUSED", None),
    ],
)
def test_transition_rules(
    before: str | None, observed: str, expected: tuple[JobStatus | None, JobStatus] | None
) -> None:
    current = {"job-1": stored(before)} if before else {}
    changes = plan(current, [remote(observed)], NOW)
    if expected is None:
        assert changes.transitions == ()
        return
    (t,) = changes.transitions
    assert (t.from_status, t.to_status) == expected
    assert t.observed_at == NOW
    assert t.seq == (3 if before else 1)
    assert t.last_seen_before == (T0 if before else None)


def test_unknown_status_refreshes_fields_but_keeps_the_known_status() -> None:
    changes = plan({"job-1": stored("RUNNING", completed=3)}, [remote("PAUSED", completed=5)], NOW)
    (write,) = changes.writes
    assert write.keep_status and write.new_count == write.expected_count == 2
    assert [s.reason for s in changes.skipped] == ["unknown_status"]
    assert len(changes.progress) == 1  # the counters did move


def test_unknown_then_known_status_is_a_first_sighting() -> None:
    first = plan({}, [remote("PAUSED")], NOW)
    assert first.transitions == ()
    (write,) = first.writes
    assert write.is_new and write.new_count == 0
    later = plan({"job-1": stored("UNKNOWN", count=0)}, [remote("RUNNING")], NOW)
    (t,) = later.transitions
    assert (t.from_status, t.to_status, t.seq) == (None, S.RUNNING, 1)


def test_stale_observation_changes_nothing() -> None:
    changes = plan({"job-1": stored("RUNNING", completed=7)}, [remote("QUEUED")], NOW)
    assert changes.writes == () and changes.progress == () and changes.touched == ()
    assert [s.reason for s in changes.skipped] == ["stale_observation"]


@pytest.mark.parametrize(
    ("before", "after", "samples"),
    [(None, 0, 1), (0, 0, 0), (0, 4, 1), (4, 4, 0), (4, 9, 1)],
)
def test_progress_sampled_only_when_counters_change(
    before: int | None, after: int, samples: int
) -> None:
    current = {"job-1": stored("RUNNING", completed=before)} if before is not None else {}
    changes = plan(current, [remote("RUNNING", completed=after)], NOW)
    assert len(changes.progress) == samples


def test_unchanged_job_is_only_touched() -> None:
    changes = plan({"job-1": stored("RUNNING", completed=4)}, [remote("RUNNING", completed=4)], NOW)
    assert changes.touched == ("job-1",)
    assert changes.writes == () and changes.transitions == ()


def test_two_reads_of_one_job_keep_the_furthest_along() -> None:
    # A list page read before the job ended, and a get read after: the get wins.
    changes = plan({"job-1": stored("RUNNING")}, [remote("SUCCESS"), remote("RUNNING")], NOW)
    (t,) = changes.transitions
    assert t.to_status is S.SUCCESS


def test_departed_lists_stored_active_jobs_not_seen() -> None:
    assert departed({"a", "b", "c"}, {"b", "x"}) == ["a", "c"]
    assert departed(set(), {"x"}) == []


KNOWN = [s for s in JobStatus if s is not JobStatus.UNKNOWN]


@given(st.lists(st.sampled_from([*(s.value for s in KNOWN), "PAUSED"]), max_size=30))
def test_recorded_history_moves_forward_and_never_repeats(observations: list[str]) -> None:
    """Whatever order observations arrive in, the recorded history is strictly forward,
    numbered 1..n without gaps, and each record starts where the previous one ended."""
    current: dict[str, StoredJob] = {}
    history: list[Transition] = []
    for n, raw in enumerate(observations):
        now = T0 + timedelta(seconds=n)
        changes = plan(current, [remote(raw)], now)
        history += changes.transitions
        for write in changes.writes:
            base = current.get("job-1")
            status = base.status if (write.keep_status and base) else write.job.status
            current["job-1"] = StoredJob(
                remote=replace(write.job, status=status),
                origin=JobOrigin.DISCOVERED,
                first_seen_at=T0,
                last_seen_at=now,
                transition_count=write.new_count,
            )
    assert [t.seq for t in history] == list(range(1, len(history) + 1))
    for previous, nxt in itertools.pairwise(history):
        assert nxt.from_status == previous.to_status
        assert (status_rank(nxt.to_status) or 0) > (status_rank(previous.to_status) or 0) or (
            nxt.to_status is not previous.to_status and not previous.to_status.is_terminal
        )
    terminal = [t for t in history if t.to_status.is_terminal]
    assert len(terminal) <= 1


# ---- progress history: the keep/drop rule ---------------------------------------------------

R = JobStatus.RUNNING


def point(minute: float, completed: int, status: JobStatus | None = R, total: int = 1000) -> Point:
    """A sample of a job of ``total`` requests, one in fifty of them failed."""
    failed = completed // 50
    return Point(
        T0 + timedelta(minutes=minute),
        status,
        Counters(total, completed, completed - failed, failed),
    )


@pytest.mark.parametrize(
    ("tail", "observed", "replaces"),
    [
        ([], point(0, 0), False),  # a job's first sample
        ([point(0, 0)], point(1, 5), False),  # the second: nothing before it to stand for it
        ([point(0, 0), point(1, 5)], point(2, 9), True),  # newest within 1% of the one before
        ([point(0, 0), point(1, 10)], point(2, 12), True),  # exactly 1%: still redundant
        ([point(0, 0), point(1, 11)], point(2, 12), False),  # newest moved the curve: kept
        ([point(0, 0), point(1, 5)], point(2, 500), True),  # a jump replaces a redundant newest
        ([point(0, 0), point(1, 5)], point(2, 6, JobStatus.SUCCESS), False),  # last of a status
        ([point(0, 0, JobStatus.QUEUED), point(1, 5)], point(2, 6), False),  # first of a status
        ([point(0, 0), point(61, 5)], point(62, 6), False),  # an hour's quiet: kept
        ([point(0, 0), point(60, 5)], point(61, 6), True),  # exactly an hour: redundant
        ([point(0, 0, None), point(1, 5, None)], point(2, 6), False),  # undated old rows stay
        ([point(0, 0), point(1, 5, total=2000)], point(2, 6, total=2000), False),  # total moved
        ([point(0, 0, total=0), point(1, 0, total=0)], point(2, 0, total=0), True),
    ],
)
def test_newest_sample_is_replaced_only_while_redundant(
    tail: list[Point], observed: Point, replaces: bool
) -> None:
    assert replaces_newest(tail, observed) is replaces


def test_a_failure_burst_alone_keeps_a_sample() -> None:
    before = point(0, 100)
    burst = Point(before.observed_at + timedelta(minutes=1), R, Counters(1000, 100, 80, 20))
    assert not redundant(before, burst)


@pytest.mark.parametrize(
    ("changes", "minute", "expected"),
    [
        ([], 5, None),
        ([(0, JobStatus.QUEUED), (3, R)], 2, JobStatus.QUEUED),
        ([(0, JobStatus.QUEUED), (3, R)], 3, R),  # the transition's own cycle: the new status
        ([(0, JobStatus.QUEUED), (3, R)], 9, R),
        ([(4, R)], 1, None),  # before its first known sighting
    ],
)
def test_status_at_an_instant(
    changes: list[tuple[int, JobStatus]], minute: int, expected: JobStatus | None
) -> None:
    dated = [(T0 + timedelta(minutes=m), s) for m, s in changes]
    assert status_at(dated, T0 + timedelta(minutes=minute)) is expected


def step_value(kept: list[Point], at: datetime) -> Counters:
    """The curve as drawn from samples: the counters of the latest one at or before ``at``."""
    return [p for p in kept if p.observed_at <= at][-1].counters


@st.composite
def histories(draw: st.DrawFn) -> list[Point]:
    """One job's observations, a minute apart: counters that only grow (steady runs, bursts,
    stalls, failure streaks), status moving forward now and then, gaps of hours."""
    total = draw(st.integers(0, 5000))
    statuses = [JobStatus.QUEUED, R, JobStatus.CANCELLATION_REQUESTED, JobStatus.CANCELLED]
    at, status, succeeded, failed = T0, 0, 0, 0
    points = []
    for step in draw(
        st.lists(
            st.tuples(
                st.integers(0, 120), st.integers(0, 80), st.integers(0, 3), st.integers(0, 20)
            ),
            max_size=80,
        )
    ):
        more_ok, more_failed, gap, advance = step
        succeeded = min(total - failed, succeeded + more_ok * total // 1000)
        failed = min(total - succeeded, failed + more_failed * total // 4000)
        at += timedelta(minutes=1 + (90 * gap if gap == 3 else 0))
        status = min(len(statuses) - 1, status + (advance == 0))
        counters = Counters(total, succeeded + failed, succeeded, failed)
        points.append(Point(at, statuses[status], counters))
    return points


@given(histories())
def test_thinned_curve_is_within_one_percent_of_the_full_one(full: list[Point]) -> None:
    """Both curves are steps, so comparing them at every observation compares them at every
    instant: between two observations neither moves."""
    kept = [full[n] for n in thin(full)]
    for p in full:
        drawn = step_value(kept, p.observed_at)
        for name in ("completed", "succeeded", "failed"):
            assert 100 * abs(getattr(drawn, name) - getattr(p.counters, name)) <= p.counters.total
    if full:
        assert kept[-1] == full[-1]  # the latest observation is always stored
    for before, after in itertools.pairwise(full):
        if before.status != after.status:  # the last and first sample of every status stay
            assert before in kept and after in kept
    assert thin(kept) == list(range(len(kept)))  # thinning again keeps every sample


def test_a_steady_day_keeps_a_few_hundred_samples_at_most() -> None:
    """1,440 observations of a job that moves every minute, evenly, all day."""
    day = [point(m, m * 1000 // 1440) for m in range(1440)]
    kept = thin(day)
    assert 90 <= len(kept) <= 101  # one for each step of just over 1% of the total
