"""The read side of the store: the queries the local API and the poller need."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    and_,
    func,
    select,
    text,
)
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.sql.elements import ColumnElement

from batchwatch.errors import StoreUnavailable
from batchwatch.models import (
    ACTIVE_STATUSES,
    JobStatus,
    ProgressSample,
    StoredJob,
    Transition,
)
from batchwatch.store.bulk import Bulk
from batchwatch.store.engine import _unavailable
from batchwatch.store.rows import (
    _FEED,
    _GET_JOB,
    _HAS_JOB,
    _JOB_COLUMNS_AS_STORED,
    _JOB_PROGRESS,
    _JOB_TRANSITIONS,
    _compiled,
    _JobDecoder,
    _progress_of,
    _transition_of,
    row_to_job,
)
from batchwatch.store.schema import jobs, sync_state


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


class Reads:
    """The store's reads (mixed into ``Store``): the queries the API and the poller need."""

    reader: Engine

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

    def stored_statuses(self, job_ids: Collection[str]) -> dict[str, JobStatus]:
        """The stored status of each of ``job_ids`` that is tracked; an untracked id is
        absent. One statement, the ids passed as one parameter (a discovery page's 100)."""
        with self.reading() as conn:
            return {
                job_id: JobStatus.parse(status)
                for job_id, status in Bulk(conn).select_in(
                    jobs, (jobs.c.id, jobs.c.status), list(job_ids)
                )
            }
