"""The read side of the store: the queries the local API and the poller need.

Every read runs through ``Reads.reading()``: one SQLAlchemy connection, one error handling
(a database that is down or locked is ``StoreUnavailable``). Job rows are decoded by the one
decoder of ``rows.py``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Executable, and_, bindparam, func, select, tuple_
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.sql.elements import ColumnElement

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
    _JOB_READ,
    _PROGRESS_READ,
    _TRANSITION_READ,
    _JobDecoder,
    _progress_of,
    _transition_of,
)
from batchwatch.store.schema import jobs, progress, sync_state, transitions

_GET_JOB = select(*_JOB_READ).where(jobs.c.id == bindparam("job_id"))
_HAS_JOB = select(jobs.c.id).where(jobs.c.id == bindparam("job_id"))
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
# The primary key (job_id, seq) serves this, in order.
_JOB_PROGRESS = (
    select(*_PROGRESS_READ).where(progress.c.job_id == bindparam("job_id")).order_by(progress.c.seq)
)
_WATCHED = [s.value for s in ACTIVE_STATUSES | {JobStatus.UNKNOWN}]
#: Tracked jobs the poller must still follow: active, or of an unknown status.
_ACTIVE_IDS = select(jobs.c.id).where(
    jobs.c.status.in_(_WATCHED), jobs.c.deleted_upstream_at.is_(None)
)

_PROVIDER_ACTIVE_IDS = _ACTIVE_IDS.where(jobs.c.provider == bindparam("provider"))


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
    #: Only the jobs of this provider (None: every provider's).
    provider: str | None = None
    #: A keyset cursor, ``(created_at, id)`` of a job: only the jobs past it in the list's
    #: order (the provider-native lists page by a job id, as OpenAI and Anthropic do).
    beyond: tuple[int, str] | None = None


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

    def _rows(self, stmt: Executable, **params: Any) -> Sequence[Sequence[Any]]:
        with self.reading() as conn:
            return conn.execute(stmt, params).all()

    def active_job_ids(self, provider: str | None = None) -> set[str]:
        """The ids of the tracked jobs the poller must still follow: active, or of an
        unknown status (only ``provider``'s, when given). A poll cycle needs no more."""
        if provider is None:
            return {row[0] for row in self._rows(_ACTIVE_IDS)}
        return {row[0] for row in self._rows(_PROVIDER_ACTIVE_IDS, provider=provider)}

    def stored_statuses(self, job_ids: Collection[str]) -> dict[str, JobStatus]:
        """The stored status of each of ``job_ids`` that is tracked (the others are absent):
        one statement, the ids passed as one parameter whatever their number."""
        with self.reading() as conn:
            rows = Bulk(conn).select_in(jobs, (jobs.c.id, jobs.c.status), list(job_ids))
            return {job_id: JobStatus.parse(status) for job_id, status in rows}

    def get_job(self, job_id: str) -> StoredJob | None:
        rows = self._rows(_GET_JOB, job_id=job_id)
        return _JobDecoder()(rows[0]) if rows else None

    def has_job(self, job_id: str) -> bool:
        """Whether the job is tracked: its primary key alone, no row decoded."""
        return bool(self._rows(_HAS_JOB, job_id=job_id))

    def list_jobs(self, q: JobQuery) -> tuple[list[StoredJob], int]:
        conditions: list[ColumnElement[bool]] = []
        if q.statuses:
            conditions.append(jobs.c.status.in_([s.value for s in q.statuses]))
        if q.model is not None:
            conditions.append(jobs.c.model == q.model)
        if q.provider is not None:
            conditions.append(jobs.c.provider == q.provider)
        if q.created_after is not None:
            conditions.append(jobs.c.created_at > q.created_after)
        for key, value in (q.metadata or {}).items():
            conditions.append(jobs.c.job_metadata[key].as_string() == value)
        if q.beyond is not None:
            place, cursor = tuple_(jobs.c.created_at, jobs.c.id), tuple_(*q.beyond)
            conditions.append(place < cursor if q.newest_first else place > cursor)
        where = and_(True, *conditions)
        order = (
            (jobs.c.created_at.desc(), jobs.c.id.desc())
            if q.newest_first
            else (jobs.c.created_at.asc(), jobs.c.id.asc())
        )
        page = select(*_JOB_READ).where(where).order_by(*order)
        page = page.limit(q.page_size).offset(q.page * q.page_size)
        with self.reading() as conn:  # one transaction (SQLite: one snapshot for both)
            total = conn.execute(select(func.count()).select_from(jobs).where(where)).scalar_one()
            found = conn.execute(page).all()
        decode = _JobDecoder()
        return [decode(row) for row in found], int(total)

    def transitions(self, job_id: str) -> list[Transition]:
        return [_transition_of(row) for row in self._rows(_JOB_TRANSITIONS, job_id=job_id)]

    def progress(self, job_id: str) -> list[ProgressSample]:
        return [_progress_of(row) for row in self._rows(_JOB_PROGRESS, job_id=job_id)]

    def feed(self, after: int, limit: int) -> list[Transition]:
        return [_transition_of(row) for row in self._rows(_FEED, after=after, limit=limit)]

    def count_by_status(self) -> dict[str, int]:
        query = select(jobs.c.status, func.count()).group_by(jobs.c.status)
        return {str(row[0]): int(row[1]) for row in self._rows(query)}

    def get_state(self, name: str) -> str | None:
        rows = self._rows(select(sync_state.c.value).where(sync_state.c.name == name))
        return str(rows[0][0]) if rows else None
