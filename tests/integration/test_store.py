"""The store on a real SQLite file (and PostgreSQL when configured): idempotent, race-safe."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from batchwatch.errors import WriteConflict
from batchwatch.models import JobSource, JobStatus
from batchwatch.store import JobQuery, Store
from batchwatch.store.schema import transitions
from batchwatch.transitions import plan
from tests.helpers import remote

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def record(store: Store, *statuses: str, job_id: str = "job-1", at: datetime = T0) -> None:
    with store.write() as w:
        before = w.load({job_id})
        changes = plan(before, [remote(s, job_id=job_id) for s in statuses], at)
        w.apply(changes, at, JobSource.DISCOVERED)


def transition_count(store: Store) -> int:
    with store.reader.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(transitions)).scalar_one())


def test_history_reads_back_in_order(store: Store) -> None:
    for n, status in enumerate(["QUEUED", "RUNNING", "SUCCESS"]):
        record(store, status, at=T0 + timedelta(seconds=n))
    history = store.transitions("job-1")
    assert [(t.from_status, t.to_status) for t in history] == [
        (None, JobStatus.QUEUED),
        (JobStatus.QUEUED, JobStatus.RUNNING),
        (JobStatus.RUNNING, JobStatus.SUCCESS),
    ]
    assert history[1].last_seen_before == T0
    assert history[2].observed_at == T0 + timedelta(seconds=2)
    assert all(t.observed_at.tzinfo is not None for t in history)
    job = store.get_job("job-1")
    assert job is not None and job.status is JobStatus.SUCCESS and job.transition_count == 3


def test_same_observation_twice_records_once(store: Store) -> None:
    record(store, "RUNNING")
    record(store, "RUNNING")
    record(store, "RUNNING")
    assert transition_count(store) == 1


def test_stale_plan_is_refused_by_compare_and_set(store: Store) -> None:
    """A writer that planned against an old read cannot record: the CAS sees the count moved."""
    record(store, "QUEUED")
    with store.write() as w:
        stale = w.load({"job-1"})
    record(store, "RUNNING")  # someone else recorded QUEUED -> RUNNING meanwhile
    changes = plan(stale, [remote("RUNNING")], T0)
    with pytest.raises(WriteConflict), store.write() as w:
        w.apply(changes, T0, JobSource.DISCOVERED)
    assert [t.to_status for t in store.transitions("job-1")] == [
        JobStatus.QUEUED,
        JobStatus.RUNNING,
    ]


def test_concurrent_writers_never_duplicate(store: Store) -> None:
    """Eight threads, each with its own Store (its own connections), record the same
    observations at once: the history holds each transition exactly once."""
    stores = [Store(store.url) for _ in range(8)]
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def worker(s: Store) -> None:
        try:
            barrier.wait()
            for status in ("QUEUED", "RUNNING", "SUCCESS"):
                record(s, *(status,), job_id="shared")
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert errors == []
    history = store.transitions("shared")
    assert [t.seq for t in history] == [1, 2, 3]
    assert [t.to_status for t in history] == [
        JobStatus.QUEUED,
        JobStatus.RUNNING,
        JobStatus.SUCCESS,
    ]


def test_list_filters_and_pages(store: Store) -> None:
    for n in range(5):
        record(store, "RUNNING" if n % 2 else "QUEUED", job_id=f"job-{n}")
    everything, total = store.list_jobs(JobQuery(page_size=2))
    assert total == 5 and len(everything) == 2
    running, total = store.list_jobs(JobQuery(statuses=(JobStatus.RUNNING,)))
    assert total == 2 and {j.id for j in running} == {"job-1", "job-3"}
    _both, total = store.list_jobs(JobQuery(statuses=(JobStatus.RUNNING, JobStatus.QUEUED)))
    assert total == 5
    none, total = store.list_jobs(JobQuery(model="another-model"))
    assert (none, total) == ([], 0)


def test_feed_reads_every_transition_once_in_recorded_order(store: Store) -> None:
    record(store, "QUEUED", job_id="a")
    record(store, "QUEUED", job_id="b")
    record(store, "RUNNING", job_id="a")
    first = store.feed(0, 2)
    rest = store.feed(first[-1].id or 0, 100)
    assert [(t.job_id, t.to_status.value) for t in first + rest] == [
        ("a", "QUEUED"),
        ("b", "QUEUED"),
        ("a", "RUNNING"),
    ]
    assert store.feed(rest[-1].id or 0, 100) == []
