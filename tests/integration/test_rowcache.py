"""The cache of job rows between writes: reused only at the row's version, which every
update must move (the database refuses one that does not), on SQLite and PostgreSQL. (A row
another process changed is read again: ``test_bulk.test_load_sees_what_another_writer_changed``.)"""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from batchwatch.models import Counters, JobOrigin, JobStatus, RemoteJob, StoredJob
from batchwatch.store import Store
from batchwatch.store.rows import _JOB_COLUMNS, _JobDecoder
from batchwatch.store.schema import jobs
from batchwatch.transitions import plan
from tests.helpers import remote

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def observe(store: Store, at: datetime, *seen: RemoteJob, retain: bool = False) -> None:
    with store.write() as w:
        w.apply(plan(w.load({j.id for j in seen}), list(seen), at), at, JobOrigin.DISCOVERED)
        if retain:
            w.retain_cached([j.id for j in seen])


def stored(store: Store) -> dict[str, tuple[int, StoredJob]]:
    """Every job row as the database holds it now, decoded afresh, with its version."""
    decode = _JobDecoder()
    with store.engine.connect() as conn:
        rows = conn.execute(jobs.select().with_only_columns(*_JOB_COLUMNS, jobs.c.row_version))
        return {row[0]: (row[-1], decode(row[:-1])) for row in rows}


def test_an_update_that_does_not_move_the_version_is_refused(store: Store) -> None:
    observe(store, T0, remote("RUNNING"))
    with pytest.raises(DatabaseError, match="row_version"), store.engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET model = 'other' WHERE id = 'job-1'"))
    # nor one that moves it by anything but one
    with pytest.raises(DatabaseError, match="row_version"), store.engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET row_version = row_version + 2"))
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE jobs SET model = 'other', row_version = row_version + 1 WHERE id = 'job-1'"
            )
        )
    job = store.get_job("job-1")
    assert job is not None and job.remote.model == "other"


def _moved(job: RemoteJob, roll: float, cycle: int) -> RemoteJob:
    """``job`` one cycle on, as ``roll`` (0..1) picks: progress, an unknown status, the end,
    new metadata, or nothing."""
    if roll < 0.3:
        c = job.counters
        done = min(100, c.completed + 7)
        return dataclasses.replace(
            job,
            status=JobStatus.RUNNING,
            raw_status="RUNNING",
            counters=Counters(100, done, done, 0),
        )
    if roll < 0.35:
        return dataclasses.replace(job, status=JobStatus.UNKNOWN, raw_status="MYSTERY")
    if roll < 0.4:
        return dataclasses.replace(job, status=JobStatus.SUCCESS, raw_status="SUCCESS")
    if roll < 0.45:
        return dataclasses.replace(job, metadata={"cycle": str(cycle)})
    return job


def test_every_cached_row_is_the_row_at_its_version(store: Store) -> None:
    """Random cycles over 12 jobs (new, moving, stuck, UNKNOWN, ending, deleted upstream):
    after each, every cache entry whose version is the row's is exactly the row."""
    rng = random.Random(7)
    jobs_now = {f"job-{n}": remote("QUEUED", job_id=f"job-{n}") for n in range(12)}
    at = T0
    checked = 0
    for cycle in range(60):
        at += timedelta(seconds=30)
        listed = [j for j in jobs_now.values() if not j.status.is_terminal and rng.random() > 0.2]
        seen = [_moved(j, rng.random(), cycle) for j in listed]  # (the others: not listed)
        jobs_now |= {j.id: j for j in seen}
        observe(store, at, *seen, retain=cycle % 5 == 4)
        if cycle % 9 == 8:
            with store.write() as w:
                w.mark_deleted(rng.choice(sorted(jobs_now)), at)
        for job_id, (version, row) in stored(store).items():
            cached = store.row_cache.at(job_id, version)
            assert cached is None or cached == row, (cycle, job_id)
            checked += cached is not None
    assert checked > 100  # (the cache held rows: the check above had something to check)


def test_an_unchanged_job_is_not_decoded_again(store: Store) -> None:
    """The point of the cache: a job seen unchanged comes back as the same object, read from
    its version alone; a job that moved is read afresh."""
    observe(store, T0, remote("RUNNING", job_id="a"), remote("RUNNING", job_id="b"))
    with store.write() as w:
        first = w.load({"a", "b"})
    observe(store, T0 + timedelta(seconds=1), remote("RUNNING", job_id="a"),
            remote("RUNNING", job_id="b", completed=3))  # fmt: skip
    with store.write() as w:
        second = w.load({"a", "b"})
    assert second["a"].remote is first["a"].remote  # (a was read at the first load)
    assert second["a"].last_seen_at == T0 + timedelta(seconds=1)
    assert second["b"].remote.counters.completed == 3


def test_the_cache_keeps_only_the_jobs_still_polled(store: Store) -> None:
    first = (remote("RUNNING", job_id="a"), remote("RUNNING", job_id="b"),
             remote("RUNNING", job_id="c"))  # fmt: skip
    observe(store, T0, *first)
    assert len(store.row_cache) == 0  # written here: read afresh next time, then kept
    observe(store, T0 + timedelta(seconds=1), *first)
    assert len(store.row_cache) == 3
    observe(store, T0 + timedelta(seconds=1), remote("SUCCESS", job_id="a"))
    assert "a" not in store.row_cache  # ended: never polled again
    observe(store, T0 + timedelta(seconds=2), remote("RUNNING", job_id="b"), retain=True)
    assert "c" not in store.row_cache and "b" in store.row_cache  # a cycle that did not see c
