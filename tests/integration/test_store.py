"""The store on a real SQLite file (and PostgreSQL when configured): idempotent, race-safe."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, select

from batchwatch.errors import StoreUnavailable, WriteConflict
from batchwatch.models import JobOrigin, JobStatus
from batchwatch.store import JobQuery, Store
from batchwatch.store.rows import _JOB_COLUMNS
from batchwatch.store.schema import jobs, transitions
from batchwatch.transitions import plan
from tests.helpers import remote

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def record(store: Store, *statuses: str, job_id: str = "job-1", at: datetime = T0) -> None:
    with store.write() as w:
        before = w.load({job_id})
        changes = plan(before, [remote(s, job_id=job_id) for s in statuses], at)
        w.apply(changes, at, JobOrigin.DISCOVERED)


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
        w.apply(changes, T0, JobOrigin.DISCOVERED)
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


def test_stored_statuses_answers_any_number_of_ids_in_one_statement(store: Store) -> None:
    record(store, "QUEUED", job_id="done")
    record(store, "SUCCESS", job_id="done", at=T0 + timedelta(seconds=1))
    record(store, "RUNNING", job_id="running")
    record(store, "SOMETHING_NEW", job_id="odd")
    # More ids than SQLite takes bound parameters (32,766): they travel as one.
    asked = ["done", "running", "odd", *(f"untracked-{n}" for n in range(40_000))]
    statements: list[str] = []

    def count(_conn: object, _cursor: object, sql: str, *_: object) -> None:
        statements.append(sql)

    event.listen(store.reader, "before_cursor_execute", count)
    try:
        found = store.stored_statuses(asked)
    finally:
        event.remove(store.reader, "before_cursor_execute", count)
    assert found == {
        "done": JobStatus.SUCCESS,
        "running": JobStatus.RUNNING,
        "odd": JobStatus.UNKNOWN,
    }
    assert len([sql for sql in statements if "jobs" in sql]) == 1
    assert store.stored_statuses([]) == {}


@pytest.mark.parametrize(
    "read",
    [
        lambda s: s.get_job("job-1"),
        lambda s: s.transitions("job-1"),
        lambda s: s.list_jobs(JobQuery()),
        lambda s: s.stored_statuses(["job-1"]),
    ],
    ids=["get_job", "transitions", "list_jobs", "stored_statuses"],
)
def test_every_read_of_a_database_that_is_down_is_store_unavailable(
    read: Callable[[Store], object],
) -> None:
    store = Store("postgresql+psycopg://batchwatch@127.0.0.1:1/nothing-listens-here")
    try:
        with pytest.raises(StoreUnavailable) as caught:
            read(store)
    finally:
        store.close()
    message = str(caught.value)
    # The driver's first line alone: never the SQL or its parameters.
    assert message.startswith("database unavailable: ") and "\n" not in message
    assert "SELECT" not in message and "job-1" not in message


def test_a_job_row_is_every_column_of_the_jobs_table() -> None:
    """The row a job is read from is derived from the records: a column no field maps to
    would be written by nobody and read by nothing. (``row_version`` is the store's own:
    the database keeps it moving, and the row cache reads it.)"""
    stored = sorted(c.name for c in jobs.columns if c.name != "row_version")
    assert sorted(c.name for c in _JOB_COLUMNS) == stored
