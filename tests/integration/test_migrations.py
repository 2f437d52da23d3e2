"""The migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    BigInteger,
    Engine,
    Integer,
    String,
    column,
    func,
    insert,
    inspect,
    select,
    table,
    text,
)

from batchwatch.models import Counters, JobOrigin
from batchwatch.store import Store, migrate
from batchwatch.store.schema import UTCDateTime, metadata, progress
from batchwatch.store.thinning import progress_0005
from batchwatch.transitions import plan


def current_revision(engine: Engine) -> str | None:
    """The revision Alembic reads from the database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    """The head Alembic finds in the shipped scripts."""
    return ScriptDirectory.from_config(migrate.alembic_config(engine)).get_current_head()


def _assert_no_drift(url: str) -> None:
    store = Store(url)
    try:
        store.migrate()
        store.migrate()  # a second run is a no-op, not an error
        assert current_revision(store.engine) == head_revision(store.engine)
        with store.engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), metadata
            )
        assert diff == [], f"migrations and schema.py disagree: {diff}"
        tables = set(inspect(store.engine).get_table_names())
        assert {"jobs", "transitions", "progress", "sync_state", "alembic_version"} <= tables
    finally:
        store.close()


def test_sqlite_migrations_match_models(sqlite_url: str) -> None:
    _assert_no_drift(sqlite_url)


@pytest.mark.postgres
def test_postgres_migrations_match_models(pg_schema_url: str) -> None:
    _assert_no_drift(pg_schema_url)


@pytest.mark.postgres
def test_postgres_jobs_pages_keep_room_for_updates(pg_schema_url: str) -> None:
    """The rows a cycle rewrites get their new versions on their own pages (migration 0007)."""
    store = Store(pg_schema_url)
    try:
        store.migrate()
        with store.engine.connect() as conn:
            options = conn.execute(
                text(
                    "SELECT c.reloptions FROM pg_class c JOIN pg_namespace n"
                    " ON n.oid = c.relnamespace"
                    " WHERE n.nspname = current_schema() AND c.relname = 'jobs'"
                )
            ).scalar_one()
        assert options == ["fillfactor=50"]
    finally:
        store.close()


def test_sqlite_runs_in_wal_mode(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    try:
        store.migrate()
        with store.reader.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    finally:
        store.close()


def test_the_head_read_from_the_scripts_is_alembics(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    try:
        assert migrate.shipped_head() == head_revision(store.engine)
    finally:
        store.close()


def test_an_older_database_is_brought_to_head(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    try:
        migrate.upgrade(store.engine, "0001")
        with store.engine.connect() as conn:
            assert migrate.stored_revisions(conn) == {"0001"}
        store.migrate()
        assert current_revision(store.engine) == head_revision(store.engine)
    finally:
        store.close()
    _assert_no_drift(sqlite_url)


def test_a_revision_the_scripts_do_not_know_is_an_error_not_a_pass(sqlite_url: str) -> None:
    """A database written by a newer batchwatch: Alembic's error, as before the shortcut."""
    store = Store(sqlite_url)
    try:
        store.migrate()
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(Exception, match="9999"):
            store.migrate()
    finally:
        store.close()


def test_script_revisions_are_read_without_importing_them() -> None:
    read = migrate._assignments
    assert read('revision = "0001"\ndown_revision = None\n') == ("0001", set())
    assert read('revision: str = "0002"\ndown_revision: str | None = "0001"\n') == (
        "0002",
        {"0001"},
    )
    assert read('revision = "m"\ndown_revision = ("a", "b")\n') == ("m", {"a", "b"})
    # Anything but literals: the question goes to Alembic.
    assert read("revision = make_id()\ndown_revision = None\n") is None
    assert read("down_revision = None\n") is None
    assert read("revision = (\n") is None


# ---- 0009: progress keyed by (job_id, seq) -------------------------------------------------

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
#: The ``jobs`` columns a row needs at revision 0008 (``row_version`` has a default).
_JOBS_0008 = table(
    "jobs",
    column("id", String),
    column("status", String),
    column("raw_status", String),
    column("endpoint", String),
    column("input_files", JSON),
    column("errors", JSON),
    column("created_at", BigInteger),
    column("total_requests", BigInteger),
    column("completed_requests", BigInteger),
    column("succeeded_requests", BigInteger),
    column("failed_requests", BigInteger),
    column("origin", String),
    column("first_seen_at", UTCDateTime),
    column("last_seen_at", UTCDateTime),
    column("transition_count", Integer),
)
#: (old id, job, completed requests, status) of the samples stored at 0008: the two jobs'
#: samples interleaved, their ids with gaps (samples thinned away by 0005).
_SAMPLES_0008 = [
    (3, "job-a", 10, "RUNNING"),
    (4, "job-b", 100, None),
    (5, "job-b", 200, "RUNNING"),
    (10, "job-a", 20, "RUNNING"),
    (11, "job-a", 30, "SUCCESS"),
    (12, "job-b", 300, "RUNNING"),
]


def _store_at_0008(url: str) -> Store:
    store = Store(url)
    migrate.upgrade(store.engine, "0008")
    job = {
        "status": "RUNNING",
        "raw_status": "RUNNING",
        "endpoint": "/v1/chat/completions",
        "input_files": [],
        "errors": [],
        "created_at": 1_795_000_000,
        "total_requests": 1000,
        "completed_requests": 0,
        "succeeded_requests": 0,
        "failed_requests": 0,
        "origin": "discovered",
        "first_seen_at": T0,
        "last_seen_at": T0,
        "transition_count": 1,
    }
    with store.engine.begin() as conn:
        conn.execute(insert(_JOBS_0008), [job | {"id": "job-a"}, job | {"id": "job-b"}])
        conn.execute(
            insert(progress_0005),
            [
                {
                    "id": sample_id,
                    "job_id": job_id,
                    "observed_at": T0 + timedelta(minutes=sample_id),
                    "total_requests": 1000,
                    "completed_requests": completed,
                    "succeeded_requests": completed,
                    "failed_requests": 0,
                    "status": status,
                }
                for sample_id, job_id, completed, status in _SAMPLES_0008
            ],
        )
    return store


def _downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    config = migrate.alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


@pytest.mark.parametrize(
    "database", ["sqlite_url", pytest.param("pg_schema_url", marks=pytest.mark.postgres)]
)
def test_0009_numbers_the_stored_samples_of_each_job_in_their_order(
    request: pytest.FixtureRequest, database: str
) -> None:
    url = request.getfixturevalue(database)
    store = _store_at_0008(url)
    try:
        migrate.upgrade(store.engine)
        query = select(
            progress.c.job_id,
            progress.c.seq,
            progress.c.observed_at,
            progress.c.completed_requests,
            progress.c.status,
        ).order_by(progress.c.job_id, progress.c.seq)
        with store.engine.connect() as conn:
            rows = [tuple(row) for row in conn.execute(query)]
        old = sorted(_SAMPLES_0008, key=lambda s: (s[1], s[0]))
        seqs = {"job-a": [1, 2, 3], "job-b": [1, 2, 3]}
        assert rows == [
            (job_id, seqs[job_id].pop(0), T0 + timedelta(minutes=n), completed, status)
            for n, job_id, completed, status in old
        ]
        assert [p.seq for p in store.progress("job-a")] == [1, 2, 3]
        # The samples of the next write are numbered after them.
        with store.write() as w:
            at = T0 + timedelta(hours=1)
            before = w.load({"job-b"})
            moved = replace(before["job-b"].remote, counters=Counters(1000, 900, 900, 0))
            w.apply(plan(before, [moved], at), at, JobOrigin.DISCOVERED)
        assert [p.seq for p in store.progress("job-b")] == [1, 2, 3, 4]
        # The downgrade gives each sample an id again, job by job in their order.
        _downgrade(store.engine, "0008")
        old_query = select(progress_0005.c.id, progress_0005.c.job_id).order_by(progress_0005.c.id)
        with store.engine.connect() as conn:
            assert [tuple(r) for r in conn.execute(old_query)] == [
                (n, job_id) for n, job_id in enumerate(["job-a"] * 3 + ["job-b"] * 4, 1)
            ]
            assert "ix_progress_job_id_id" in {
                ix["name"] for ix in inspect(conn).get_indexes("progress")
            }
        with store.engine.begin() as conn:  # new ids go on after them
            conn.execute(
                insert(progress_0005).values(
                    job_id="job-a",
                    observed_at=T0,
                    total_requests=1,
                    completed_requests=1,
                    succeeded_requests=1,
                    failed_requests=0,
                )
            )
            assert conn.execute(select(func.max(progress_0005.c.id))).scalar_one() == 8
    finally:
        store.close()
    _assert_no_drift(url)  # and up again, to exactly schema.py
