"""``progress`` keyed by (job_id, seq), the sample's number within its job: one index, not two.

Each sample had an autoincrement ``id`` (its primary key, with an index of its own) and an
index on (job_id, id) that served every read: one job's samples oldest first, and the
writer's two newest of each job. The id was used for nothing else. Measured on PostgreSQL
over a simulated day of 10,000 jobs: the table 69.6 MB, ``pk_progress`` 33.4 MB,
``ix_progress_job_id_id`` 23.8 MB, against a target of 100 MB for the whole database. Keyed
by (job_id, seq), each job's samples numbered as its transitions are, the primary key is the
one index and serves both reads; and the four request counters take 4 bytes each instead of
8 (``models.MAX_COUNT``: the edge refuses a larger count; Mistral allows a million requests
in a batch). Measured over the same day (10,000 jobs, the same benchmark): the table 54.6 MB
and its key 24.4 MB, 79.1 MB instead of 126.8 MB, the whole database's growth 89.4 MB. With
the counters left at 8 bytes the growth came to about 101 MB: both changes are needed.

The table is rebuilt, on SQLite and PostgreSQL alike: every stored sample is carried over,
numbered 1, 2, 3, ... within its job in the order of its old id. The downgrade rebuilds the
id form, numbering the samples job by job in seq order.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

# Statements here name tables and columns only; no value is interpolated.
# ruff: noqa: S608

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = sa.DateTime(timezone=True)
#: Every column but the key, in both forms of the table.
_VALUES = (
    "observed_at, total_requests, completed_requests, succeeded_requests, failed_requests, status"
)


def _columns(count: type[sa.Integer]) -> list[sa.Column[Any]]:
    """The columns after the key; ``count``: the type of the four request counters."""
    return [
        sa.Column("observed_at", _UTC, nullable=False),
        *(
            sa.Column(f"{name}_requests", count(), nullable=False)
            for name in ("total", "completed", "succeeded", "failed")
        ),
        sa.Column("status", sa.String(32)),
    ]


def _set_aside(old: str) -> None:
    """Rename ``progress`` to ``old``, freeing the names of its indexes for the new table.
    (On SQLite nothing else needs renaming: foreign key constraints are named per table,
    and its primary key has no index of its own or one named after the table.)"""
    op.rename_table("progress", old)
    if op.get_bind().dialect.name == "postgresql":
        # The index behind the primary key is renamed with the constraint.
        op.execute(f"ALTER INDEX pk_progress RENAME TO pk_{old}")


def upgrade() -> None:
    # Dropped first: an index keeps its name when its table is renamed.
    op.drop_index("ix_progress_job_id_id", table_name="progress")
    _set_aside("progress_0008")
    op.create_table(
        "progress",
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        *_columns(sa.Integer),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_progress_job_id_jobs"),
        sa.PrimaryKeyConstraint("job_id", "seq", name="pk_progress"),
    )
    op.execute(
        f"INSERT INTO progress (job_id, seq, {_VALUES})"
        " SELECT job_id, row_number() OVER (PARTITION BY job_id ORDER BY id),"
        f" {_VALUES} FROM progress_0008"
    )
    op.drop_table("progress_0008")


def downgrade() -> None:
    _set_aside("progress_0009")
    op.create_table(
        "progress",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        *_columns(sa.BigInteger),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_progress_job_id_jobs"),
        sa.PrimaryKeyConstraint("id", name="pk_progress"),
    )
    op.execute(
        f"INSERT INTO progress (id, job_id, {_VALUES})"
        " SELECT row_number() OVER (ORDER BY job_id, seq), job_id,"
        f" {_VALUES} FROM progress_0009"
    )
    if op.get_bind().dialect.name == "postgresql":
        # The ids were given here, not drawn from the column's sequence: it goes on after them.
        op.execute(
            "SELECT setval(pg_get_serial_sequence('progress', 'id'),"
            " coalesce(max(id), 0) + 1, false) FROM progress"
        )
    op.create_index("ix_progress_job_id_id", "progress", ["job_id", "id"])
    op.drop_table("progress_0009")
