"""The write side of the store: the operations of one write transaction, and the cache of
active job rows that spares a poll cycle decoding 10,000 unchanged rows."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    insert,
    select,
    update,
)

from batchwatch.errors import WriteConflict
from batchwatch.models import (
    JobSource,
    RemoteJob,
    StoredJob,
    Transition,
)
from batchwatch.store.bulk import Bulk
from batchwatch.store.rows import (
    _JOB_COLUMNS,
    _MARK_COLUMNS,
    _NEW_JOB_COLUMNS,
    _PROGRESS_COLUMNS,
    _SNAPSHOT_COLUMNS,
    _TRANSITION_COLUMNS,
    _JobDecoder,
    _snapshot,
)
from batchwatch.store.schema import jobs, progress, sync_state, transitions
from batchwatch.transitions import Changes, JobWrite

Marks = tuple[int, datetime, datetime | None]


class RowCache:
    """The rows of active jobs as this process last read or wrote them, so that a poll
    cycle does not decode 10,000 unchanged rows again.

    Never trusted blindly: ``Writer.load`` reads each cached job's marks (``transition_count``,
    ``last_seen_at``, ``deleted_upstream_at``) under the write lock, and a row whose marks
    moved is read in full. That is sound because every statement that changes a job row
    moves one of them (``Writer`` is the only code that changes job rows). Entries only
    ever go stale, never wrong; a race between two threads' updates costs a re-read.
    """

    def __init__(self) -> None:
        self.rows: dict[str, tuple[StoredJob, Marks]] = {}

    def same_job(self, job: RemoteJob) -> RemoteJob:
        """The cached snapshot of ``job`` if it is equal to ``job``, else ``job``: a listed
        job that did not change is then held once, not twice, for the rest of the cycle."""
        cached = self.rows.get(job.id)
        if cached is not None and cached[0].remote == job:
            return cached[0].remote
        return job

    def keep(self, job: StoredJob) -> None:
        if job.deleted_upstream_at is None and not job.status.is_terminal:
            self.rows[job.id] = (
                job,
                (job.transition_count, job.last_seen_at, job.deleted_upstream_at),
            )
        else:
            self.rows.pop(job.id, None)  # not polled any more: not worth keeping


class Writer:
    """The operations of one write transaction (see ``Store.write``).

    The poll cycle's statements go through ``Bulk``: a cycle over 10,000 jobs is a handful
    of round trips, not one per job.
    """

    def __init__(self, conn: Connection, cache: RowCache | None = None) -> None:
        self.conn = conn
        self.bulk = Bulk(conn)
        self.recorded: list[Transition] = []
        self._cache = cache
        self._loaded: dict[str, StoredJob] = {}
        #: Rows as this transaction leaves them, where that is known exactly (``apply``).
        self._after: dict[str, StoredJob] = {}
        self._changed: set[str] = set()  # rows this transaction rewrote otherwise

    def load(self, job_ids: Collection[str]) -> dict[str, StoredJob]:
        """The stored rows of ``job_ids``, as of this transaction (see ``RowCache``: a cached
        row is reused only if its marks, read now, have not moved)."""
        wanted = set(job_ids)
        found: dict[str, StoredJob] = {}
        cached = self._cache.rows if self._cache is not None else {}
        candidates = [i for i in wanted if i in cached]
        if candidates:
            decode = _JobDecoder()
            for job_id, count, last_seen, deleted in self.bulk.select_in(
                jobs, _MARK_COLUMNS, candidates
            ):
                job, marks = cached.get(job_id, (None, None))
                if job is not None and marks == (
                    count,
                    decode.time(last_seen),
                    decode.time(deleted),
                ):
                    found[job_id] = job
        decode = _JobDecoder()
        for row in self.bulk.select_in(jobs, _JOB_COLUMNS, [i for i in wanted if i not in found]):
            found[row[0]] = decode(row)
        self._loaded.update(found)
        return found

    def apply(self, changes: Changes, now: datetime, source: JobSource) -> None:
        """Persist ``changes`` (planned against rows read in this same transaction)."""
        bulk = self.bulk
        at = bulk.time(now)  # one instant for the whole write: encoded once
        new = [w for w in changes.writes if w.is_new]
        old = [w for w in changes.writes if not w.is_new]
        if new:
            new_rows = (
                (w.job.id, w.job.status.value, *_snapshot(w.job, w.new_count), source.value, at, at)
                for w in new
            )
            bulk.insert(jobs, _NEW_JOB_COLUMNS, new_rows)
        if old:
            self._update_jobs(old, at)
        bulk.set_for_ids(jobs, jobs.c.last_seen_at, at, list(changes.touched))
        after = self._after
        for w in changes.writes:
            seen = self._loaded.get(w.job.id)
            if w.is_new:
                after[w.job.id] = StoredJob(w.job, source, now, now, w.new_count)
            elif seen is not None and not w.keep_status:
                after[w.job.id] = StoredJob(
                    w.job,
                    seen.source,
                    seen.first_seen_at,
                    now,
                    w.new_count,
                    seen.deleted_upstream_at,
                )
            else:  # the stored status was kept: the row is neither the old one nor ``w.job``
                self._changed.add(w.job.id)
        for job_id in changes.touched:
            if (seen := self._loaded.get(job_id)) is not None:
                after[job_id] = StoredJob(
                    seen.remote,
                    seen.source,
                    seen.first_seen_at,
                    now,
                    seen.transition_count,
                    seen.deleted_upstream_at,
                )
        if changes.transitions:
            self.recorded += changes.transitions
            # Generators: on SQLite the driver takes each row as it writes it.
            rows: Iterable[tuple[Any, ...]] = (
                (
                    t.job_id,
                    t.seq,
                    t.from_status.value if t.from_status else None,
                    t.to_status.value,
                    at if t.observed_at is now else bulk.time(t.observed_at),
                    bulk.time(t.last_seen_before),
                    t.source,
                )
                for t in changes.transitions
            )
            bulk.insert(transitions, _TRANSITION_COLUMNS, rows)
        if changes.progress:
            rows = (
                (
                    p.job_id,
                    at if p.observed_at is now else bulk.time(p.observed_at),
                    p.counters.total,
                    p.counters.completed,
                    p.counters.succeeded,
                    p.counters.failed,
                )
                for p in changes.progress
            )
            bulk.insert(progress, _PROGRESS_COLUMNS, rows)

    def _update_jobs(self, writes: Sequence[JobWrite], at: Any) -> None:
        """Compare-and-set: each row is written only if its ``transition_count`` is still the
        one this transaction read. ``at``: the write's instant, as a driver value."""
        keys = (jobs.c.id, jobs.c.transition_count)
        # An UNKNOWN observation refreshes every field but the last known status.
        moved = (
            (w.job.status.value, *_snapshot(w.job, w.new_count), at, w.job.id, w.expected_count)
            for w in writes
            if not w.keep_status
        )
        kept = (
            (*_snapshot(w.job, w.new_count), at, w.job.id, w.expected_count)
            for w in writes
            if w.keep_status
        )
        matched = self.bulk.update_where(
            jobs, (jobs.c.status, *_SNAPSHOT_COLUMNS, jobs.c.last_seen_at), keys, moved
        )
        matched += self.bulk.update_where(
            jobs, (*_SNAPSHOT_COLUMNS, jobs.c.last_seen_at), keys, kept
        )
        if matched != len(writes):
            raise WriteConflict(f"{len(writes) - matched} job(s) changed under this write")

    def touch(self, job_ids: Collection[str], now: datetime) -> None:
        self._changed.update(job_ids)
        self.bulk.set_for_ids(jobs, jobs.c.last_seen_at, self.bulk.time(now), list(job_ids))

    def committed(self) -> None:
        """Called once the transaction committed: what it read and left behind is cached."""
        if self._cache is None:
            return
        for job in self._loaded.values():
            if job.id not in self._changed and job.id not in self._after:
                self._cache.keep(job)
        for job in self._after.values():
            if job.id not in self._changed:
                self._cache.keep(job)
        for job_id in self._changed:
            self._cache.rows.pop(job_id, None)  # rewritten: read it back next time

    def mark_deleted(self, job_id: str, now: datetime) -> None:
        self._changed.add(job_id)
        self.conn.execute(update(jobs).where(jobs.c.id == job_id).values(deleted_upstream_at=now))

    def set_state(self, name: str, value: str) -> None:
        exists = self.conn.execute(
            select(sync_state.c.name).where(sync_state.c.name == name)
        ).first()
        if exists:
            self.conn.execute(
                update(sync_state).where(sync_state.c.name == name).values(value=value)
            )
        else:
            self.conn.execute(insert(sync_state).values(name=name, value=value))
