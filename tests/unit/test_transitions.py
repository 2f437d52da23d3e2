"""The pure transition rules, from tables of cases and one property."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchwatch.models import (
    JobSource,
    JobStatus,
    StoredJob,
    Transition,
    status_rank,
)
from batchwatch.transitions import departed, plan
from tests.helpers import remote

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=1)
S = JobStatus


def stored(status: str, count: int = 2, completed: int = 0) -> StoredJob:
    return StoredJob(
        remote=remote(status, completed=completed),
        source=JobSource.DISCOVERED,
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
                source=JobSource.DISCOVERED,
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
