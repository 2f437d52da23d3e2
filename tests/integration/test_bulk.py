"""The poll cycle's bulk statements (``batchwatch.store.bulk``) against SQLAlchemy's typed reads.

The writer encodes values itself (JSON text, timestamps as the driver takes them) and reads
rows back without SQLAlchemy's type processing. These tests prove, on a real SQLite file and
on PostgreSQL when configured, that what the bulk path writes is exactly what the API's
typed reads return, that its own reads agree, and that compare-and-set still holds.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from batchwatch.errors import WriteConflict
from batchwatch.models import MAX_COUNT, BatchError, Counters, JobOrigin, JobStatus, RemoteJob
from batchwatch.store import Store
from batchwatch.store.rows import _TRANSITION_COLUMNS
from batchwatch.store.schema import progress, transitions
from batchwatch.transitions import plan

T0 = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)

_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40)
_epoch = st.integers(min_value=0, max_value=2**40)
_counters = st.builds(
    Counters,
    total=st.integers(0, MAX_COUNT),
    completed=st.integers(0, MAX_COUNT),
    succeeded=st.integers(0, MAX_COUNT),
    failed=st.integers(0, MAX_COUNT),
)
_known = [s for s in JobStatus if s is not JobStatus.UNKNOWN]
_ids = itertools.count()


@st.composite
def remote_jobs(draw: st.DrawFn, job_id: str) -> RemoteJob:
    status = draw(st.sampled_from(_known))
    return RemoteJob(
        id=job_id,
        status=status,
        raw_status=status.value,
        endpoint=draw(_text.filter(bool)),
        input_files=tuple(draw(st.lists(_text, max_size=3))),
        model=draw(st.none() | _text),
        agent_id=draw(st.none() | _text),
        metadata=draw(st.none() | st.dictionaries(_text, _text, max_size=3)),
        output_file=draw(st.none() | _text),
        error_file=draw(st.none() | _text),
        errors=tuple(
            draw(st.lists(st.builds(BatchError, _text, st.integers(1, 2**31)), max_size=2))
        ),
        created_at=draw(_epoch),
        started_at=draw(st.none() | _epoch),
        completed_at=draw(st.none() | _epoch),
        counters=draw(_counters),
    )


def _write(store: Store, observed: list[RemoteJob], at: datetime) -> None:
    with store.write() as w:
        before = w.load({j.id for j in observed})
        w.apply(plan(before, observed, at), at, JobOrigin.DISCOVERED)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_bulk_writes_read_back_equal_through_both_paths(store: Store, data: st.DataObject) -> None:
    job_id = f"job-{next(_ids)}"  # unique per example: the store outlives each one
    first = data.draw(remote_jobs(job_id))
    _write(store, [first], T0)
    second = data.draw(remote_jobs(job_id))
    later = T0 + timedelta(minutes=1, microseconds=7)
    _write(store, [second], later)

    typed = store.get_job(job_id)  # SQLAlchemy's typed read, as the API does it
    assert typed is not None
    with store.write() as w:
        raw = w.load({job_id})[job_id]  # the bulk path's own read
    assert raw == typed
    # The second observation replaced the snapshot, unless it went back in the lifecycle
    # (then it is ignored: history is never rewritten by a stale page).
    changes = plan({job_id: raw}, [second], later)
    assert not changes.writes and not changes.transitions
    assert typed.first_seen_at == T0
    assert typed.remote.counters in (first.counters, second.counters)
    for t in store.transitions(job_id):
        assert t.observed_at in (T0, later)


def test_a_cycle_of_many_jobs_is_one_write_and_every_row_lands(store: Store) -> None:
    ids = [f"job-{n:05d}" for n in range(2500)]
    base = RemoteJob(
        id="x",
        status=JobStatus.RUNNING,
        raw_status="RUNNING",
        endpoint="/v1/chat/completions",
        input_files=("file-1",),
        model="mistral-small-latest",
        agent_id=None,
        metadata={"team": "ml", "ünïcode": "✓"},
        output_file=None,
        error_file=None,
        errors=(),
        created_at=1_780_000_000,
        started_at=1_780_000_010,
        completed_at=None,
        counters=Counters(100, 10, 9, 1),
    )
    _write(store, [replace(base, id=i) for i in ids], T0)
    done = replace(
        base,
        status=JobStatus.SUCCESS,
        raw_status="SUCCESS",
        completed_at=1_780_000_900,
        output_file="out",
        counters=Counters(100, 100, 98, 2),
    )
    _write(store, [replace(done, id=i) for i in ids], T0 + timedelta(minutes=1))
    with store.reading() as conn:
        n_transitions = conn.execute(select(func.count()).select_from(transitions)).scalar_one()
        n_progress = conn.execute(select(func.count()).select_from(progress)).scalar_one()
    assert (n_transitions, n_progress) == (5000, 5000)
    job = store.get_job(ids[-1])
    assert job is not None
    assert job.remote == replace(done, id=ids[-1])
    assert job.transition_count == 2 and job.last_seen_at == T0 + timedelta(minutes=1)
    assert [t.to_status for t in store.transitions(ids[0])] == [
        JobStatus.RUNNING,
        JobStatus.SUCCESS,
    ]
    assert store.transitions(ids[0])[1].last_seen_before == T0


def test_touch_moves_only_last_seen(store: Store) -> None:
    job = RemoteJob(
        id="job-1", status=JobStatus.QUEUED, raw_status="QUEUED", endpoint="/v1/ocr",
        input_files=(), model=None, agent_id=None, metadata=None, output_file=None,
        error_file=None, errors=(), created_at=1, started_at=None, completed_at=None,
        counters=Counters(0, 0, 0, 0),
    )  # fmt: skip
    _write(store, [job], T0)
    _write(store, [job], T0 + timedelta(hours=1))
    stored = store.get_job("job-1")
    assert stored is not None
    assert (stored.first_seen_at, stored.last_seen_at) == (T0, T0 + timedelta(hours=1))
    assert stored.remote == job and stored.transition_count == 1


def test_compare_and_set_refuses_a_plan_made_on_stale_rows(store: Store) -> None:
    job = RemoteJob(
        id="job-1", status=JobStatus.QUEUED, raw_status="QUEUED", endpoint="/v1/ocr",
        input_files=(), model=None, agent_id=None, metadata=None, output_file=None,
        error_file=None, errors=(), created_at=1, started_at=None, completed_at=None,
        counters=Counters(5, 0, 0, 0),
    )  # fmt: skip
    _write(store, [job], T0)
    with store.write() as w:
        stale = w.load({"job-1"})
    running = replace(job, status=JobStatus.RUNNING, raw_status="RUNNING")
    _write(store, [running], T0 + timedelta(minutes=1))
    unknown = replace(job, status=JobStatus.UNKNOWN, raw_status="PAUSED")
    for observed in (replace(job, status=JobStatus.SUCCESS, raw_status="SUCCESS"), unknown):
        with pytest.raises(WriteConflict), store.write() as w:
            w.apply(plan(stale, [observed], T0 + timedelta(minutes=2)), T0, JobOrigin.DISCOVERED)
    assert [t.to_status for t in store.transitions("job-1")] == [
        JobStatus.QUEUED,
        JobStatus.RUNNING,
    ]


def _queued(job_id: str = "job-1") -> RemoteJob:
    return RemoteJob(
        id=job_id, status=JobStatus.QUEUED, raw_status="QUEUED", endpoint="/v1/ocr",
        input_files=(), model=None, agent_id=None, metadata={"k": "v"}, output_file=None,
        error_file=None, errors=(), created_at=1, started_at=None, completed_at=None,
        counters=Counters(5, 0, 0, 0),
    )  # fmt: skip


def test_load_sees_what_another_writer_changed(store: Store) -> None:
    """Two stores on one database, as two processes: each write reads the rows as the other
    left them, whether it moved the status, the counters or deletion."""
    other = Store(store.url)
    try:
        job = _queued()
        _write(store, [job], T0)
        _write(store, [job], T0 + timedelta(minutes=1))  # touched
        progressed = replace(job, counters=Counters(5, 2, 2, 0))
        _write(other, [progressed], T0 + timedelta(minutes=2))  # same status, new counters
        with store.write() as w:
            assert w.load({"job-1"})["job-1"].remote == progressed
        running = replace(progressed, status=JobStatus.RUNNING, raw_status="RUNNING")
        _write(other, [running], T0 + timedelta(minutes=3))
        with store.write() as w:
            before = w.load({"job-1"})
        assert before["job-1"].remote == running and before["job-1"].transition_count == 2
        with other.write() as w:
            w.mark_deleted("job-1", T0 + timedelta(minutes=4))
        with store.write() as w:
            assert w.load({"job-1"})["job-1"].deleted_upstream_at == T0 + timedelta(minutes=4)
    finally:
        other.close()


def test_last_seen_is_exact_for_the_next_transition(store: Store) -> None:
    job = _queued()
    _write(store, [job], T0)
    for minute in (1, 2, 3):  # touched each time: only last_seen_at moves
        _write(store, [job], T0 + timedelta(minutes=minute))
    done = replace(job, status=JobStatus.SUCCESS, raw_status="SUCCESS", output_file="out")
    _write(store, [done], T0 + timedelta(minutes=4))
    last = store.transitions("job-1")[-1]
    assert (last.from_status, last.to_status) == (JobStatus.QUEUED, JobStatus.SUCCESS)
    assert last.last_seen_before == T0 + timedelta(minutes=3)


def test_a_write_that_fails_leaves_nothing_behind(store: Store) -> None:
    job = _queued()
    _write(store, [job], T0)
    _write(store, [job], T0 + timedelta(minutes=1))

    def failing_cycle() -> None:
        with store.write() as w:
            before = w.load({"job-1"})
            w.apply(plan(before, [job], T0 + timedelta(minutes=2)), T0, JobOrigin.DISCOVERED)
            raise RuntimeError("the cycle fails before commit")

    with pytest.raises(RuntimeError):
        failing_cycle()
    stored = store.get_job("job-1")
    assert stored is not None and stored.last_seen_at == T0 + timedelta(minutes=1)


def test_a_refused_row_is_sqlalchemys_error_and_nothing_of_the_write_stays(store: Store) -> None:
    """Rows go to the driver one at a time (SQLite) or in one statement (PostgreSQL); either
    way a refused row fails the write with SQLAlchemy's exception class, and rolls it back."""
    _write(store, [_queued()], T0)
    recorded = store.transitions("job-1")

    def refused_write() -> None:
        with store.write() as w:
            at = w.bulk.time(T0)
            rows = (
                (job_id, 7, None, "QUEUED", at, None, "poll", None, "QUEUED")
                for job_id in ("job-1", "no-such-job")  # the second breaks the foreign key
            )
            w.bulk.insert(transitions, _TRANSITION_COLUMNS, rows)

    with pytest.raises(IntegrityError):
        refused_write()
    assert store.transitions("job-1") == recorded
