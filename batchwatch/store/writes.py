"""The write side of the store: the operations of one write transaction."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, insert, select, update

from batchwatch.errors import WriteConflict
from batchwatch.events import Event, for_transitions
from batchwatch.models import Counters, JobOrigin, JobStatus, StoredJob, Transition
from batchwatch.store.bulk import Bulk
from batchwatch.store.codecs import decode_time
from batchwatch.store.outbox import insert_events
from batchwatch.store.rowcache import RowCache
from batchwatch.store.rows import (
    _JOB_COLUMNS,
    _NEW_JOB_COLUMNS,
    _PROGRESS_COLUMNS,
    _SNAPSHOT_COLUMNS,
    _TRANSITION_COLUMNS,
    _JobDecoder,
    _snapshot,
)
from batchwatch.store.schema import jobs, progress, sync_state, transitions
from batchwatch.transitions import Changes, JobWrite, Point, replaces_newest

#: A new progress row as this module writes it: the columns users read, then the job's status
#: (its number within the job, ``seq``, is the database's: see ``Bulk.insert``).
_SAMPLE_COLUMNS = (*_PROGRESS_COLUMNS, progress.c.status)
#: What overwriting a job's newest sample sets, and the key of the row it overwrites.
_SAMPLE_VALUES = _PROGRESS_COLUMNS[1:]
_SAMPLE_KEY = (progress.c.job_id, progress.c.seq)
#: A job's newest samples as the keep/drop rule reads them, with their numbers.
_TAIL_COLUMNS = (progress.c.seq, *_PROGRESS_COLUMNS[:2], progress.c.status, *_PROGRESS_COLUMNS[2:])


#: A job row as ``load`` reads it: every column of the record, then its version.
_LOAD_COLUMNS = (*_JOB_COLUMNS, jobs.c.row_version)
_VERSION_COLUMNS = (jobs.c.id, jobs.c.row_version)


def _sample_time(value: Any) -> datetime:
    at = decode_time(value)
    assert at is not None  # (the column is NOT NULL)
    return at


class Writer:
    """The operations of one write transaction (see ``Store.write``).

    The poll cycle's statements go through ``Bulk``: a cycle over 10,000 jobs is a handful
    of round trips, not one per job.
    """

    def __init__(self, conn: Connection, cache: RowCache) -> None:
        self.conn = conn
        self.bulk = Bulk(conn)
        self.recorded: list[Transition] = []
        #: The events this transaction recorded (the outbox: see ``events.py``).
        self.events: list[Event] = []
        self._cache = cache
        #: What ``committed`` tells the cache: the version of each row loaded; the rows
        #: decoded here, each at its version; the rows only seen again, each with the version
        #: it was loaded at and the instant it was seen; the rows rewritten otherwise.
        self._versions: dict[str, int] = {}
        self._decoded: dict[str, tuple[int, StoredJob]] = {}
        self._seen: list[tuple[str, int, datetime]] = []
        self._rewritten: set[str] = set()

    def load(self, job_ids: Collection[str]) -> dict[str, StoredJob]:
        """The stored rows of ``job_ids``, as of this transaction: a cached row if it is still
        the row's version (see ``rowcache``), else the row read and decoded."""
        found: dict[str, StoredJob] = {}
        cache, versions = self._cache, self._versions
        wanted = list(job_ids)
        cached = [i for i in wanted if i in cache]
        for job_id, version in self.bulk.select_in(jobs, _VERSION_COLUMNS, cached):
            if (job := cache.at(job_id, version)) is not None:
                found[job_id] = job
                versions[job_id] = version
        wanted = [i for i in wanted if i not in found]
        decode = _JobDecoder()
        for row in self.bulk.select_in(jobs, _LOAD_COLUMNS, wanted):
            job = found[row[0]] = decode(row[:-1])
            versions[row[0]] = row[-1]
            self._decoded[row[0]] = (row[-1], job)
        return found

    def apply(self, changes: Changes, now: datetime, origin: JobOrigin) -> None:
        """Persist ``changes`` (planned against rows read in this same transaction)."""
        at = self.bulk.time(now)  # one instant for the whole write: encoded once
        self._write_jobs(changes, now, at, origin)
        if changes.transitions:
            self.recorded += changes.transitions
            self._insert_transitions(changes.transitions, now, at)
            jobs_written = {w.job.id: w.job for w in changes.writes}
            self.record_events(for_transitions(changes.transitions, jobs_written))
        if changes.progress:
            self._record_progress(changes, now, at)

    def _write_jobs(self, changes: Changes, now: datetime, at: Any, origin: JobOrigin) -> None:
        """The job rows: new ones inserted, changed ones compare-and-set, the others seen."""
        new = [w for w in changes.writes if w.is_new]
        old = [w for w in changes.writes if not w.is_new]
        if new:
            rows = (
                (w.job.id, w.job.status.value, *_snapshot(w.job, w.new_count), origin.value, at, at)
                for w in new
            )
            self.bulk.insert(jobs, _NEW_JOB_COLUMNS, rows)
        if old:
            self._update_jobs(old, at)
        self.bulk.set_for_ids(
            jobs, jobs.c.last_seen_at, at, list(changes.touched), bump=jobs.c.row_version
        )
        self._note_after(changes, now)

    def _note_after(self, changes: Changes, now: datetime) -> None:
        """What ``_write_jobs`` did to each row, for the cache (see ``committed``)."""
        for w in changes.writes:
            self._rewritten.add(w.job.id)
            # Not kept to the commit: a rewritten row is read afresh anyway, and the rows of
            # a slice (``poller.WRITE_SLICE``) are to be freed with it.
            self._decoded.pop(w.job.id, None)
        self._seen += [(job_id, self._versions[job_id], now) for job_id in changes.touched]

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
        version = jobs.c.row_version
        matched = self.bulk.update_where(
            jobs, (jobs.c.status, *_SNAPSHOT_COLUMNS, jobs.c.last_seen_at), keys, moved, version
        )
        matched += self.bulk.update_where(
            jobs, (*_SNAPSHOT_COLUMNS, jobs.c.last_seen_at), keys, kept, version
        )
        if matched != len(writes):
            raise WriteConflict(f"{len(writes) - matched} job(s) changed under this write")

    def _insert_transitions(self, recorded: Sequence[Transition], now: datetime, at: Any) -> None:
        time = self.bulk.time
        # A generator: on SQLite the driver takes each row as it writes it.
        rows: Iterable[tuple[Any, ...]] = (
            (
                t.job_id,
                t.seq,
                t.from_status.value if t.from_status else None,
                t.to_status.value,
                at if t.observed_at is now else time(t.observed_at),
                time(t.last_seen_before),
                t.source,
                t.from_provider_status,
                t.to_provider_status,
            )
            for t in recorded
        )
        self.bulk.insert(transitions, _TRANSITION_COLUMNS, rows)

    def record_events(self, found: Sequence[Event]) -> None:
        """Put ``found`` in the outbox, in this transaction: with what they report."""
        insert_events(self.bulk, found)
        self.events += found

    def _record_progress(self, changes: Changes, now: datetime, at: Any) -> None:
        """Each sample overwrites its job's newest stored one or is stored as a new row, as
        ``transitions.replaces_newest`` decides from the job's last two stored samples. A new
        row is numbered after the job's newest stored sample (1 for a job without any)."""
        status = {w.job.id: w.job.status for w in changes.writes}
        # A job that is new, or moved to a status it never had, has no sample of that status:
        # its sample is a new row whatever its tail, which is then not read.
        fresh = {t.job_id for t in changes.transitions} | {
            w.job.id for w in changes.writes if w.is_new
        }
        stored = [p.job_id for p in changes.progress if p.job_id not in fresh]
        tails = self._progress_tails(stored) if stored else {}
        time = self.bulk.time
        replaced: list[tuple[Any, ...]] = []
        added: list[tuple[Any, ...]] = []
        for sample in changes.progress:
            c, job_status = sample.counters, status[sample.job_id]
            observed = at if sample.observed_at is now else time(sample.observed_at)
            values = (observed, c.total, c.completed, c.succeeded, c.failed)
            tail = tails.get(sample.job_id, [])
            point = Point(sample.observed_at, job_status, c)
            if replaces_newest([p for _, p in tail], point):
                replaced.append((*values, sample.job_id, tail[-1][0]))
            else:
                added.append((sample.job_id, *values, job_status.value))
        self.bulk.update_where(progress, _SAMPLE_VALUES, _SAMPLE_KEY, replaced)
        # (A sample a job: ``plan`` makes one per job, and a cycle's slices share no job.)
        self.bulk.insert(progress, _SAMPLE_COLUMNS, added, numbered=progress.c.seq)

    def _progress_tails(self, job_ids: Sequence[str]) -> dict[str, list[tuple[int, Point]]]:
        """Each job's last two stored samples, oldest first, with their numbers (``seq``)."""
        tails: dict[str, list[tuple[int, Point]]] = {}
        rows = self.bulk.newest_in(
            progress, _TAIL_COLUMNS, job_ids, key=progress.c.job_id, order=progress.c.seq, n=2
        )
        # The samples of 10,000 jobs come from a few cycles: each instant decoded once.
        time = cache(_sample_time)
        for seq, job_id, observed_at, status, *counts in rows:
            at = time(observed_at)
            point = Point(at, JobStatus.parse(status) if status else None, Counters(*counts))
            tail = tails.setdefault(job_id, [])
            tail.append((seq, point))
            if len(tail) == 2 and tail[0][0] > seq:  # (the statement does not order them)
                tail.reverse()
        return tails

    def committed(self) -> None:
        """Called once the transaction committed: the cache learns the rows it decoded, the
        rows it only saw again, and forgets the rows it rewrote otherwise."""
        cache = self._cache
        for version, job in self._decoded.values():
            cache.put(version, job)
        for job_id, version, at in self._seen:
            cache.seen(job_id, version, at)
        for job_id in self._rewritten:
            cache.drop(job_id)

    def retain_cached(self, job_ids: Iterable[str], provider: str | None = None) -> None:
        """Let the cache keep only ``job_ids`` (of ``provider``'s: ``RowCache.retain``)."""
        self._cache.retain(job_ids, provider)

    def mark_deleted(self, job_id: str, now: datetime) -> None:
        self._rewritten.add(job_id)
        self.conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id)
            .values(deleted_upstream_at=now, row_version=jobs.c.row_version + 1)
        )

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
