"""The progress history stays small: the write path overwrites a redundant newest sample, and
migration 0005 thins what was stored before, by the same rule (``transitions.thin``). Each
job's samples are numbered 1, 2, 3, ... (``seq``), which migration 0009 gave the stored ones."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from batchwatch.models import Counters, JobOrigin, JobStatus, RemoteJob
from batchwatch.store import Store, migrate
from batchwatch.store.rows import _NEW_JOB_COLUMNS, _snapshot
from batchwatch.store.schema import progress, transitions
from batchwatch.store.thinning import progress_0005, thin_progress
from batchwatch.transitions import Point, plan, thin
from tests.helpers import remote

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
S = JobStatus


def _job(status: str, completed: int, job_id: str = "job-1") -> RemoteJob:
    job = remote(status, job_id)
    return replace(job, counters=Counters(1000, completed, completed, 0))


def _observe(store: Store, observed: list[RemoteJob], minute: int) -> None:
    at = T0 + timedelta(minutes=minute)
    with store.write() as w:
        w.apply(plan(w.load({j.id for j in observed}), observed, at), at, JobOrigin.DISCOVERED)


def _curve(store: Store, job_id: str = "job-1") -> list[tuple[int, int]]:
    """(minute, completed) of each stored sample."""
    return [
        (int((p.observed_at - T0).total_seconds() // 60), p.counters.completed)
        for p in store.progress(job_id)
    ]


def test_a_running_job_keeps_one_sample_per_percent_and_always_its_latest(store: Store) -> None:
    _observe(store, [_job("QUEUED", 0)], 0)
    for minute in range(1, 31):  # 3 requests of 1,000 a minute
        _observe(store, [_job("RUNNING", 3 * minute)], minute)
    kept = _curve(store)
    assert kept[0] == (0, 0) and kept[-1] == (30, 90)  # first and latest observation
    assert len(kept) <= 12  # 30 observations: about one per 1% step
    for (_, before), (_, after) in itertools.pairwise(kept[1:-1]):
        assert after - before > 10  # each kept sample but the newest moved the curve > 1%


def test_a_status_change_freezes_the_last_sample_of_the_status(store: Store) -> None:
    _observe(store, [_job("RUNNING", 0)], 0)
    _observe(store, [_job("RUNNING", 1)], 1)
    _observe(store, [_job("RUNNING", 2)], 2)  # overwrites minute 1: within 1% of minute 0
    _observe(store, [_job("CANCELLATION_REQUESTED", 3)], 3)  # the last RUNNING one stays
    _observe(store, [_job("CANCELLATION_REQUESTED", 4)], 4)
    _observe(store, [_job("CANCELLED", 5)], 5)
    assert _curve(store) == [(0, 0), (2, 2), (3, 3), (4, 4), (5, 5)]


def test_another_writer_sees_the_same_newest_sample(store: Store) -> None:
    """The decision reads the stored tail under the write lock, never a copy in memory."""
    other = Store(store.url)
    try:
        _observe(store, [_job("RUNNING", 0)], 0)
        _observe(other, [_job("RUNNING", 1)], 1)
        _observe(store, [_job("RUNNING", 2)], 2)
        _observe(other, [_job("RUNNING", 50)], 3)
        assert _curve(store) == [(0, 0), (3, 50)]
    finally:
        other.close()


def test_history_users_read_keeps_its_shape(store: Store) -> None:
    _observe(store, [_job("RUNNING", 0), _job("RUNNING", 0, "job-2")], 0)
    _observe(store, [_job("RUNNING", 5), _job("RUNNING", 500, "job-2")], 1)
    samples = store.progress("job-2")
    assert [(s.job_id, s.counters) for s in samples] == [
        ("job-2", Counters(1000, 0, 0, 0)),
        ("job-2", Counters(1000, 500, 500, 0)),
    ]
    assert [s.seq for s in samples] == [1, 2]


def _seqs(store: Store, job_id: str = "job-1") -> list[int | None]:
    return [p.seq for p in store.progress(job_id)]


def test_a_new_sample_is_numbered_after_the_newest_of_its_job(store: Store) -> None:
    """The number goes on from the job's newest stored sample: an overwritten sample keeps
    its number, the sample of a status change takes the next one, and each job counts on its
    own."""
    _observe(store, [_job("QUEUED", 0), _job("QUEUED", 0, "job-2")], 0)
    assert _seqs(store) == [1] and _seqs(store, "job-2") == [1]
    _observe(store, [_job("RUNNING", 1)], 1)  # a transition: a new row after the QUEUED one
    _observe(store, [_job("RUNNING", 2)], 2)
    _observe(store, [_job("RUNNING", 3)], 3)  # overwrites minute 2's (within 1% of minute 1)
    assert _curve(store) == [(0, 0), (1, 1), (3, 3)] and _seqs(store) == [1, 2, 3]
    _observe(store, [_job("RUNNING", 300)], 4)  # overwrites it again (it is the redundant one)
    _observe(store, [_job("RUNNING", 301)], 5)  # a new row after the overwritten one
    _observe(store, [_job("RUNNING", 302)], 6)  # overwrites minute 5's
    assert _curve(store) == [(0, 0), (1, 1), (4, 300), (6, 302)]
    assert _seqs(store) == [1, 2, 3, 4]
    # A transition's sample after a replaced newest one; the other job's first transition.
    _observe(store, [_job("SUCCESS", 1000), _job("RUNNING", 10, "job-2")], 7)
    assert _curve(store)[-1] == (7, 1000) and _seqs(store) == [1, 2, 3, 4, 5]
    assert _seqs(store, "job-2") == [1, 2]
    _observe(store, [_job("RUNNING", 11, "job-2")], 8)
    assert _seqs(store, "job-2") == [1, 2, 3] and _seqs(store) == [1, 2, 3, 4, 5]


def _old_history(store: Store) -> None:
    """A job stored before 0005: a sample every minute, no status on them."""
    job = _job("RUNNING", 0)
    with store.write() as w:
        at = w.bulk.time(T0)
        values = ("job-1", "RUNNING", *_snapshot(job, 2), "discovered", at, at)
        # The jobs table as it was at 0004: its origin column was still named source, and it
        # had no provider column yet (0012).
        kept = [(c.name, v) for c, v in zip(_NEW_JOB_COLUMNS, values, strict=True)]
        kept = [(n, v) for n, v in kept if n != "provider"]
        row = tuple(v for _, v in kept)
        names = ["source" if n == "origin" else n for n, _ in kept]
        marks = ", ".join("?" if store.is_sqlite else "%s" for _ in names)
        sql = f"INSERT INTO jobs ({', '.join(names)}) VALUES ({marks})"  # noqa: S608 (schema names)
        w.conn.exec_driver_sql(sql, row)
    with store.engine.begin() as conn:
        conn.execute(
            insert(transitions),
            [
                {
                    "job_id": "job-1",
                    "seq": 1,
                    "to_status": "QUEUED",
                    "observed_at": T0,
                    "source": "poll",
                },
                {
                    "job_id": "job-1",
                    "seq": 2,
                    "from_status": "QUEUED",
                    "to_status": "RUNNING",
                    "observed_at": T0 + timedelta(minutes=2),
                    "source": "poll",
                },
            ],
        )
        conn.execute(
            insert(progress_0005),  # (the table as it was before 0009: keyed by its id)
            [
                {
                    "job_id": "job-1",
                    "observed_at": T0 + timedelta(minutes=m),
                    "total_requests": 1000,
                    "completed_requests": 3 * m,
                    "succeeded_requests": 3 * m,
                    "failed_requests": 0,
                }
                for m in range(40)
            ],
        )


@pytest.mark.parametrize(
    "database", ["sqlite_url", pytest.param("pg_schema_url", marks=pytest.mark.postgres)]
)
def test_migration_thins_stored_history_by_the_same_rule(
    request: pytest.FixtureRequest, database: str
) -> None:
    store = Store(request.getfixturevalue(database))
    try:
        migrate.upgrade(store.engine, "0004")
        _old_history(store)
        migrate.upgrade(store.engine, "0005")
        old = progress_0005
        query = select(old.c.observed_at, old.c.completed_requests, old.c.status)
        with store.engine.connect() as conn:
            rows = conn.execute(query.order_by(old.c.id)).all()
        kept = [(int((at - T0).total_seconds() // 60), completed) for at, completed, _ in rows]
        statuses = [status for *_, status in rows]
        assert statuses[:3] == ["QUEUED", "QUEUED", "RUNNING"]
        # minutes 0 and 1: QUEUED (the last of it kept); from 2 on RUNNING, a step per 1%
        assert kept[:3] == [(0, 0), (1, 3), (2, 6)] and kept[-1] == (39, 117)
        assert len(kept) < 20
        with store.engine.begin() as conn:  # thinning again changes nothing
            again = thin_progress(conn)
        assert (again.deleted, again.kept) == (0, len(kept))
        # 0009 carries the kept samples over, numbered in their order
        migrate.upgrade(store.engine)
        assert _curve(store) == kept and _seqs(store) == list(range(1, len(kept) + 1))
        with store.engine.connect() as conn:
            query = select(progress.c.status).order_by(progress.c.seq)
            assert list(conn.execute(query).scalars()) == statuses
        # and new samples carry on from the thinned tail, by the same rule
        _observe(store, [_job("RUNNING", 118)], 40)
        points = [Point(T0 + timedelta(minutes=m), S.QUEUED if m < 2 else S.RUNNING,
                        Counters(1000, c, c, 0)) for m, c in [*kept, (40, 118)]]  # fmt: skip
        expected = [kept[n] if n < len(kept) else (40, 118) for n in thin(points)]
        assert _curve(store) == expected and _seqs(store) == list(range(1, len(expected) + 1))
    finally:
        store.close()
