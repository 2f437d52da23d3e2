"""The history store: idempotent writes and the queries the API and the poller need.

Writes go through ``Store.write()``: one transaction, serialised across every process that
shares the database (SQLite ``BEGIN IMMEDIATE``; a PostgreSQL transaction-scoped advisory
lock), so state is read and changed under the same lock. Each job update is also a
compare-and-set on ``transition_count`` and ``(job_id, seq)`` is unique, so even a writer
that slipped past the lock could not record a transition twice.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from sys import intern
from types import MappingProxyType
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    Dialect,
    Engine,
    RowMapping,
    Select,
    String,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.elements import ColumnElement

from batchwatch import migrate
from batchwatch.bulk import Bulk, decode_json, decode_time, json_text
from batchwatch.models import (
    ACTIVE_STATUSES,
    BatchError,
    Counters,
    JobSource,
    JobStatus,
    ProgressSample,
    RemoteJob,
    StoredJob,
    Transition,
)
from batchwatch.schema import UTCDateTime, jobs, progress, sync_state, transitions
from batchwatch.transitions import Changes, JobWrite

# Any constant works; it only has to be the same for every batchwatch sharing a database.
_PG_WRITE_LOCK = 0x62617463  # "batc"


class StoreUnavailable(Exception):
    """The database cannot be reached or is locked past the busy timeout; try again later."""


def _unavailable(exc: DBAPIError) -> StoreUnavailable:
    # The driver's message only: SQLAlchemy's own text carries the SQL and its parameters.
    first = str(exc.orig or exc).strip().splitlines()
    return StoreUnavailable(f"database unavailable: {first[0] if first else type(exc).__name__}")


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


class WriteConflict(Exception):
    """Another writer changed a job between our read and our write; the cycle is retried."""


@dataclass(frozen=True, slots=True)
class JobQuery:
    """The local API's list filters (Mistral's list parameters)."""

    statuses: tuple[JobStatus, ...] = ()
    model: str | None = None
    created_after: int | None = None
    metadata: Mapping[str, str] | None = None
    newest_first: bool = True
    page: int = 0
    page_size: int = 100


def _sqlite_setup(engine: Engine, *, immediate: bool, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
        # Take transaction control from the sqlite3 module so BEGIN is ours to emit.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")  # readers never block the writer
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable at each commit in WAL mode
        cursor.execute("PRAGMA foreign_keys = ON")
        # 512 KiB of page cache per connection instead of 2 MiB: the operating system caches
        # the file anyway, and the daemon's memory target counts every connection's cache.
        cursor.execute("PRAGMA cache_size = -512")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front: a read-then-write transaction cannot be
        # overtaken by another writer between its read and its write.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str, *, writer: bool = True, busy_timeout_ms: int = 5000) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            from pathlib import Path

            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        _sqlite_setup(engine, immediate=writer, busy_timeout_ms=busy_timeout_ms)
        return engine
    return create_engine(url, pool_pre_ping=True)


def safe_url(url: str) -> str:
    """The URL with any password masked, fit for logs and messages."""
    return make_url(url).render_as_string(hide_password=True)


class Store:
    def __init__(self, url: str, *, busy_timeout_ms: int = 5000) -> None:
        self.url = url
        #: Called with the transitions of each committed write (metrics count them).
        self.on_recorded: list[Callable[[Sequence[Transition]], None]] = []
        self.engine = make_engine(url, writer=True, busy_timeout_ms=busy_timeout_ms)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.row_cache = RowCache()
        # SQLite: a second engine whose transactions are plain BEGIN, so reads never queue
        # behind the write lock. PostgreSQL's MVCC needs no such split.
        self.reader = (
            make_engine(url, writer=False, busy_timeout_ms=busy_timeout_ms)
            if self.is_sqlite
            else self.engine
        )

    def migrate(self) -> None:
        migrate.upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()
        if self.reader is not self.engine:
            self.reader.dispose()

    @contextmanager
    def write(self) -> Iterator[Writer]:
        try:
            with self.engine.begin() as conn:
                if not self.is_sqlite:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_WRITE_LOCK})
                writer = Writer(conn, self.row_cache)
                yield writer
        except (OperationalError, InterfaceError) as exc:
            raise _unavailable(exc) from exc
        writer.committed()
        # Committed: now, and only now, the transitions count as recorded.
        if writer.recorded:
            for listener in self.on_recorded:
                listener(writer.recorded)

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for reads; a database that is down or locked is StoreUnavailable."""
        try:
            with self.reader.connect() as conn:
                yield conn
        except (OperationalError, InterfaceError) as exc:
            raise _unavailable(exc) from exc

    def _fetch(self, stmt: Select[Any], **params: Any) -> Sequence[Sequence[Any]]:
        """The rows of one of the fixed reads below, through the driver itself, as it returns
        them (SQLite: JSON and timestamps as text). A single-job read spends several times
        longer in SQLAlchemy's execution layers (and, on SQLite, in the ``BEGIN`` and the
        rollback around one ``SELECT``) than in the database; the statement is still built
        from the schema and compiled by SQLAlchemy, once per dialect."""
        compiled = _compiled(self.reader.dialect, stmt)
        args = compiled.defaults | params
        dbapi = self.reader.dialect.loaded_dbapi
        try:
            # The pool's connection (it pings PostgreSQL's first); the pool raises the
            # driver's own errors, not SQLAlchemy's.
            conn = self.reader.raw_connection()
            try:
                cursor = conn.cursor()
                if compiled.order is None:
                    cursor.execute(compiled.sql, args)
                else:
                    cursor.execute(compiled.sql, tuple(args[name] for name in compiled.order))
                rows: Sequence[Sequence[Any]] = cursor.fetchall()
                cursor.close()
            finally:
                conn.close()  # back to the pool, rolled back
        except (OperationalError, InterfaceError) as exc:
            raise _unavailable(exc) from exc
        except (dbapi.OperationalError, dbapi.InterfaceError) as exc:
            first = str(exc).strip().splitlines()
            reason = first[0] if first else type(exc).__name__
            raise StoreUnavailable(f"database unavailable: {reason}") from exc
        return rows

    # ---- reads -------------------------------------------------------------------------

    def active_job_ids(self) -> set[str]:
        """The ids alone of ``active_jobs``: all a poll cycle needs, at a fraction of the
        cost of decoding every row (10,000 active jobs: ~17 ms instead of ~300 ms)."""
        watched = [s.value for s in ACTIVE_STATUSES | {JobStatus.UNKNOWN}]
        query = select(jobs.c.id).where(
            jobs.c.status.in_(watched), jobs.c.deleted_upstream_at.is_(None)
        )
        with self.reading() as conn:
            return set(conn.execute(query).scalars())

    def active_jobs(self) -> dict[str, StoredJob]:
        """Tracked jobs the poller must still follow: active, or of an unknown status."""
        watched = [s.value for s in ACTIVE_STATUSES | {JobStatus.UNKNOWN}]
        query = select(jobs).where(jobs.c.status.in_(watched), jobs.c.deleted_upstream_at.is_(None))
        with self.reading() as conn:
            return {row["id"]: row_to_job(row) for row in conn.execute(query).mappings()}

    def get_job(self, job_id: str) -> StoredJob | None:
        rows = self._fetch(_GET_JOB, job_id=job_id)
        return _JobDecoder()(rows[0]) if rows else None

    def has_job(self, job_id: str) -> bool:
        """Whether the job is tracked: its primary key alone, no row decoded."""
        return bool(self._fetch(_HAS_JOB, job_id=job_id))

    def list_jobs(self, q: JobQuery) -> tuple[list[StoredJob], int]:
        conditions: list[ColumnElement[bool]] = []
        if q.statuses:
            conditions.append(jobs.c.status.in_([s.value for s in q.statuses]))
        if q.model is not None:
            conditions.append(jobs.c.model == q.model)
        if q.created_after is not None:
            conditions.append(jobs.c.created_at > q.created_after)
        for key, value in (q.metadata or {}).items():
            conditions.append(jobs.c.job_metadata[key].as_string() == value)
        where = and_(True, *conditions)
        order = (
            (jobs.c.created_at.desc(), jobs.c.id.desc())
            if q.newest_first
            else (jobs.c.created_at.asc(), jobs.c.id.asc())
        )
        # The columns as the driver returns them: decoded below, not by SQLAlchemy's result
        # processing (most of a page's time went to it).
        page = select(*_JOB_COLUMNS_AS_STORED).where(where).order_by(*order)
        page = page.limit(q.page_size).offset(q.page * q.page_size)
        with self.reading() as conn:  # one transaction (SQLite: one snapshot for both)
            total = conn.execute(select(func.count()).select_from(jobs).where(where)).scalar_one()
            found = conn.execute(page).all()
        decode = _JobDecoder()
        return [decode(row) for row in found], int(total)

    def transitions(self, job_id: str) -> list[Transition]:
        return [_transition_of(row) for row in self._fetch(_JOB_TRANSITIONS, job_id=job_id)]

    def progress(self, job_id: str) -> list[ProgressSample]:
        return [_progress_of(row) for row in self._fetch(_JOB_PROGRESS, job_id=job_id)]

    def feed(self, after: int, limit: int) -> list[Transition]:
        return [_transition_of(row) for row in self._fetch(_FEED, after=after, limit=limit)]

    def count_by_status(self) -> dict[str, int]:
        query = select(jobs.c.status, func.count()).group_by(jobs.c.status)
        with self.reading() as conn:
            return {status: int(n) for status, n in conn.execute(query)}

    def get_state(self, name: str) -> str | None:
        with self.reading() as conn:
            query = select(sync_state.c.value).where(sync_state.c.name == name)
            value = conn.execute(query).scalar_one_or_none()
        return str(value) if value is not None else None

    def ping(self) -> None:
        with self.reading() as conn:
            conn.execute(text("SELECT 1"))


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


# ---- row mapping -----------------------------------------------------------------------


#: What Mistral reports of a job, as stored (all but the status, which an UNKNOWN keeps).
_SNAPSHOT_COLUMNS = (
    jobs.c.raw_status,
    jobs.c.endpoint,
    jobs.c.model,
    jobs.c.agent_id,
    jobs.c.input_files,
    jobs.c.job_metadata,
    jobs.c.output_file,
    jobs.c.error_file,
    jobs.c.errors,
    jobs.c.created_at,
    jobs.c.started_at,
    jobs.c.completed_at,
    jobs.c.total_requests,
    jobs.c.completed_requests,
    jobs.c.succeeded_requests,
    jobs.c.failed_requests,
    jobs.c.transition_count,
)
_NEW_JOB_COLUMNS = (
    jobs.c.id,
    jobs.c.status,
    *_SNAPSHOT_COLUMNS,
    jobs.c.source,
    jobs.c.first_seen_at,
    jobs.c.last_seen_at,
)
_JOB_COLUMNS = (*_NEW_JOB_COLUMNS, jobs.c.deleted_upstream_at)
#: The id, then what every change to a job row moves (``RowCache``).
_MARK_COLUMNS = (
    jobs.c.id,
    jobs.c.transition_count,
    jobs.c.last_seen_at,
    jobs.c.deleted_upstream_at,
)
_TRANSITION_COLUMNS = (
    transitions.c.job_id,
    transitions.c.seq,
    transitions.c.from_status,
    transitions.c.to_status,
    transitions.c.observed_at,
    transitions.c.last_seen_before,
    transitions.c.source,
)
_PROGRESS_COLUMNS = (
    progress.c.job_id,
    progress.c.observed_at,
    progress.c.total_requests,
    progress.c.completed_requests,
    progress.c.succeeded_requests,
    progress.c.failed_requests,
)


def _snapshot(job: RemoteJob, transition_count: int) -> tuple[Any, ...]:
    """``job`` as the driver values of ``_SNAPSHOT_COLUMNS``."""
    c = job.counters
    return (
        job.raw_status,
        job.endpoint,
        job.model,
        job.agent_id,
        json_text(list(job.input_files)),
        json_text(dict(job.metadata) if job.metadata is not None else None),
        job.output_file,
        job.error_file,
        json_text([{"message": e.message, "count": e.count} for e in job.errors]),
        job.created_at,
        job.started_at,
        job.completed_at,
        c.total,
        c.completed,
        c.succeeded,
        c.failed,
        transition_count,
    )


class _JobDecoder:
    """Rows of ``_JOB_COLUMNS`` as the driver returned them → ``StoredJob``.

    One decoder serves one load. Rows of one load share most timestamps (every job seen in
    the last cycle has its instant) and often their metadata, so each distinct text is
    parsed once."""

    def __init__(self) -> None:
        self._times: dict[Any, datetime | None] = {}
        self._metadata: dict[Any, Any] = {}

    def time(self, value: Any) -> datetime | None:
        if value in self._times:
            return self._times[value]
        decoded = self._times[value] = decode_time(value)
        return decoded

    def _meta(self, value: Any) -> Any:
        if not isinstance(value, str):
            return value  # PostgreSQL: already decoded, one object per row
        found = self._metadata.get(value, _MISSING)
        if found is _MISSING:
            decoded = decode_json(value)
            # Shared between the jobs that have it: read-only from here on.
            found = self._metadata[value] = (
                MappingProxyType(decoded) if isinstance(decoded, dict) else decoded
            )
        return found

    def __call__(self, row: Sequence[Any]) -> StoredJob:
        (
            job_id, status, raw_status, endpoint, model, agent_id, input_files, metadata,
            output_file, error_file, errors, created_at, started_at, completed_at,
            total, completed, succeeded, failed, transition_count,
            source, first_seen_at, last_seen_at, deleted_upstream_at,
        ) = row  # fmt: skip
        remote = RemoteJob(
            job_id,
            JobStatus.parse(status),
            intern(raw_status),  # cached rows share these few strings instead of a copy each
            intern(endpoint),
            tuple(decode_json(input_files)),
            intern(model) if model is not None else None,
            agent_id,
            self._meta(metadata),
            output_file,
            error_file,
            tuple(BatchError(e["message"], e.get("count", 1)) for e in decode_json(errors)),
            created_at,
            started_at,
            completed_at,
            Counters(total, completed, succeeded, failed),
        )
        first, last = self.time(first_seen_at), self.time(last_seen_at)
        assert first is not None
        assert last is not None
        return StoredJob(
            remote, _SOURCES[source], first, last, transition_count, self.time(deleted_upstream_at)
        )


_MISSING = object()
_SOURCES = {s.value: s for s in JobSource}


def _counters(row: RowMapping) -> Counters:
    return Counters(
        total=row["total_requests"],
        completed=row["completed_requests"],
        succeeded=row["succeeded_requests"],
        failed=row["failed_requests"],
    )


def row_to_job(row: RowMapping) -> StoredJob:
    remote = RemoteJob(
        id=row["id"],
        status=JobStatus.parse(row["status"]),
        raw_status=row["raw_status"],
        endpoint=row["endpoint"],
        input_files=tuple(row["input_files"]),
        model=row["model"],
        agent_id=row["agent_id"],
        metadata=row["job_metadata"],
        output_file=row["output_file"],
        error_file=row["error_file"],
        errors=tuple(BatchError(e["message"], e.get("count", 1)) for e in row["errors"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        counters=_counters(row),
    )
    return StoredJob(
        remote=remote,
        source=JobSource(row["source"]),
        first_seen_at=row["first_seen_at"],
        last_seen_at=row["last_seen_at"],
        transition_count=row["transition_count"],
        deleted_upstream_at=row["deleted_upstream_at"],
    )


# ---- the API's reads: statements, compiled once per dialect, and their rows decoded ---------

#: ``_JOB_COLUMNS`` (the order ``_JobDecoder`` reads) with the JSON and timestamp columns
#: left as the driver returns them: ``_JobDecoder`` decodes them faster than SQLAlchemy.
_JOB_COLUMNS_AS_STORED = tuple(
    type_coerce(c, String()) if isinstance(c.type, JSON | UTCDateTime) else c for c in _JOB_COLUMNS
)
_GET_JOB = select(*_JOB_COLUMNS).where(jobs.c.id == bindparam("job_id"))
_HAS_JOB = select(jobs.c.id).where(jobs.c.id == bindparam("job_id"))
_TRANSITION_READ = (transitions.c.id, *_TRANSITION_COLUMNS)
# (job_id, seq) is unique: its index serves this, in order.
_JOB_TRANSITIONS = (
    select(*_TRANSITION_READ)
    .where(transitions.c.job_id == bindparam("job_id"))
    .order_by(transitions.c.seq)
)
_FEED = (
    select(*_TRANSITION_READ)
    .where(transitions.c.id > bindparam("after"))
    .order_by(transitions.c.id)
    .limit(bindparam("limit"))
)
_JOB_PROGRESS = (
    select(progress.c.id, *_PROGRESS_COLUMNS)
    .where(progress.c.job_id == bindparam("job_id"))
    .order_by(progress.c.id)
)


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    order: tuple[str, ...] | None  # the parameters' order (SQLite's ?), None when named
    defaults: dict[str, Any]  # values SQLAlchemy bound itself (SQLite's OFFSET 0)


_COMPILED: dict[tuple[str, int], _Compiled] = {}


def _compiled(dialect: Dialect, stmt: Select[Any]) -> _Compiled:
    """``stmt`` (one of the module's own statements) as SQL for the driver of ``dialect``."""
    key = (dialect.name, id(stmt))
    found = _COMPILED.get(key)
    if found is None:
        c = stmt.compile(dialect=dialect)
        order = tuple(c.positiontup or ()) if c.positional else None
        found = _COMPILED[key] = _Compiled(str(c), order, dict(c.params))
    return found


def _transition_of(row: Sequence[Any]) -> Transition:
    """A row of ``_TRANSITION_READ`` as the driver returned it."""
    id_, job_id, seq, from_status, to_status, observed_at, last_seen_before, source = row
    observed = decode_time(observed_at)
    assert observed is not None
    return Transition(
        id=id_,
        job_id=job_id,
        seq=seq,
        from_status=JobStatus.parse(from_status) if from_status else None,
        to_status=JobStatus.parse(to_status),
        observed_at=observed,
        last_seen_before=decode_time(last_seen_before),
        source=source,
    )


def _progress_of(row: Sequence[Any]) -> ProgressSample:
    """A row of ``_JOB_PROGRESS`` as the driver returned it."""
    id_, job_id, observed_at, total, completed, succeeded, failed = row
    observed = decode_time(observed_at)
    assert observed is not None
    return ProgressSample(
        id=id_,
        job_id=job_id,
        observed_at=observed,
        counters=Counters(total, completed, succeeded, failed),
    )
