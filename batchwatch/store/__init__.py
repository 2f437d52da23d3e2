"""The history store: every SQLAlchemy and Alembic import of batchwatch lives in this package.

``Store`` is the one object the rest of batchwatch holds. Its reads (``reads.py``) all run
through ``Store.reading()``, one connection with one error handling; its writes go through
``Store.write()``: one transaction, serialised across every process that shares the database
(SQLite ``BEGIN IMMEDIATE``; a PostgreSQL transaction-scoped advisory lock), so state is read
and changed under the same lock. Each job update is also a compare-and-set on
``transition_count`` and ``(job_id, seq)`` is unique, so even a writer that slipped past the
lock could not record a transition twice.

The modules: ``schema.py`` the tables; ``codecs.py`` how a timestamp and a JSON value are
stored; ``rows.py`` the columns of each record and the one decoder of a job row; ``reads.py``
the queries; ``writes.py`` one write transaction's operations; ``rowcache.py`` the rows of
active jobs kept between writes; ``bulk.py`` the set-based statements of a poll cycle's
write; ``intents.py`` create intents; ``engine.py`` engines for SQLite and PostgreSQL;
``migrate.py`` migrations run from code.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import Connection, text
from sqlalchemy.exc import InterfaceError, OperationalError

from batchwatch.models import Transition
from batchwatch.store import migrate
from batchwatch.store.engine import _PG_WRITE_LOCK, _unavailable, make_engine, safe_url
from batchwatch.store.reads import JobQuery, Reads
from batchwatch.store.rowcache import RowCache
from batchwatch.store.writes import Writer

__all__ = ["JobQuery", "Store", "Writer", "make_engine", "safe_url"]


class Store(Reads):
    def __init__(
        self, url: str, *, busy_timeout_ms: int = 5000, idle_timeout_ms: int | None = None
    ) -> None:
        """``idle_timeout_ms`` (PostgreSQL): the server ends a session left idle inside a
        transaction that long, with its locks (a frozen daemon's, in team mode)."""
        self.url = url
        #: Called with the transitions of each committed write (metrics count them).
        self.on_recorded: list[Callable[[Sequence[Transition]], None]] = []
        #: Called after each committed write that put events in the outbox (their
        #: dispatchers wake up).
        self.on_events: list[Callable[[], None]] = []
        self.engine = make_engine(
            url, writer=True, busy_timeout_ms=busy_timeout_ms, idle_timeout_ms=idle_timeout_ms
        )
        #: Run at the end of every write transaction, before its commit: a leader's writes
        #: are fenced by its lease (``fenced``).
        self._fence: Callable[[Connection], None] | None = None
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        #: The rows of active jobs between writes (see ``rowcache``).
        self.row_cache = RowCache()
        # SQLite: a second engine whose transactions are plain BEGIN, so reads never queue
        # behind the write lock. PostgreSQL's MVCC needs no such split.
        self.reader = (
            make_engine(url, writer=False, busy_timeout_ms=busy_timeout_ms)
            if self.is_sqlite
            else self.engine
        )

    def fenced(self, fence: Callable[[Connection], None]) -> Store:
        """This store (the same engines, cache and listeners) whose every write runs
        ``fence`` before committing: it raises to refuse the write (``store/lease.check``)."""
        twin = copy.copy(self)
        twin._fence = fence
        return twin

    def unfenced(self) -> Store:
        """This store without its fence: for writes any daemon of a team may make."""
        if self._fence is None:
            return self
        twin = copy.copy(self)
        twin._fence = None
        return twin

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
                if self._fence is not None:
                    self._fence(conn)
        except (OperationalError, InterfaceError) as exc:
            raise _unavailable(exc) from exc
        writer.committed()
        # Committed: now, and only now, the transitions count as recorded.
        if writer.recorded:
            for listener in self.on_recorded:
                listener(writer.recorded)
        if writer.events:
            self.events_changed()

    def events_changed(self) -> None:
        """Wake whoever waits for events (dispatchers, long polls): new ones were recorded,
        or deliveries were made due again."""
        for wake in self.on_events:
            wake()
