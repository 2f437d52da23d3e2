"""The migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from batchwatch.store import Store, migrate
from batchwatch.store.schema import metadata


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
