"""``jobs.row_version``: every update of a job row moves it by one, or the database refuses.

The writer keeps the rows of active jobs between poll cycles and reuses one only while its
``row_version`` is still the one it holds (``batchwatch.store.rowcache``). That is sound
only if no statement can change a row without moving its version; these triggers make that
a rule of the database rather than a habit of the code: an UPDATE that does not set
``row_version`` to the old value plus one is aborted, whoever runs it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MESSAGE = "jobs: every UPDATE must set row_version = row_version + 1"


def upgrade() -> None:
    op.add_column("jobs", sa.Column("row_version", sa.Integer, nullable=False, server_default="0"))
    if op.get_bind().dialect.name == "postgresql":
        # The WHEN clause is evaluated without calling the function: a conforming update
        # costs no PL/pgSQL call.
        op.execute(
            "CREATE FUNCTION jobs_row_version_refused() RETURNS trigger LANGUAGE plpgsql AS"
            f" $$ BEGIN RAISE EXCEPTION '{MESSAGE}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER jobs_row_version BEFORE UPDATE ON jobs FOR EACH ROW"
            " WHEN (NEW.row_version IS DISTINCT FROM OLD.row_version + 1)"
            " EXECUTE FUNCTION jobs_row_version_refused()"
        )
    else:
        op.execute(
            "CREATE TRIGGER jobs_row_version BEFORE UPDATE ON jobs"
            " WHEN NEW.row_version IS NOT OLD.row_version + 1"
            f" BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
        )


def downgrade() -> None:
    op.execute("DROP TRIGGER jobs_row_version" + (" ON jobs" if _postgres() else ""))
    if _postgres():
        op.execute("DROP FUNCTION jobs_row_version_refused()")
    # (In place: a batch table copy would have to drop ``jobs``, which the history tables
    # reference; SQLite 3.35+ drops a column itself.)
    op.execute("ALTER TABLE jobs DROP COLUMN row_version")


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"
