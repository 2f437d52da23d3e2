"""Initial schema: jobs, transitions, progress, sync_state.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("raw_status", sa.String(64), nullable=False),
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("model", sa.String(256)),
        sa.Column("agent_id", sa.String(256)),
        sa.Column("input_files", sa.JSON(), nullable=False),
        sa.Column("job_metadata", sa.JSON()),
        sa.Column("output_file", sa.String(64)),
        sa.Column("error_file", sa.String(64)),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sa.BigInteger()),
        sa.Column("completed_at", sa.BigInteger()),
        sa.Column("total_requests", sa.BigInteger(), nullable=False),
        sa.Column("completed_requests", sa.BigInteger(), nullable=False),
        sa.Column("succeeded_requests", sa.BigInteger(), nullable=False),
        sa.Column("failed_requests", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("first_seen_at", _UTC, nullable=False),
        sa.Column("last_seen_at", _UTC, nullable=False),
        sa.Column("transition_count", sa.Integer(), nullable=False),
        sa.Column("deleted_upstream_at", _UTC),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_index("ix_jobs_created_at_id", "jobs", ["created_at", "id"])
    op.create_table(
        "transitions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("from_status", sa.String(32)),
        sa.Column("to_status", sa.String(32), nullable=False),
        sa.Column("observed_at", _UTC, nullable=False),
        sa.Column("last_seen_before", _UTC),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text()),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_transitions_job_id_jobs"),
        sa.PrimaryKeyConstraint("id", name="pk_transitions"),
        sa.UniqueConstraint("job_id", "seq", name="uq_transitions_job_id_seq"),
    )
    op.create_table(
        "progress",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("observed_at", _UTC, nullable=False),
        sa.Column("total_requests", sa.BigInteger(), nullable=False),
        sa.Column("completed_requests", sa.BigInteger(), nullable=False),
        sa.Column("succeeded_requests", sa.BigInteger(), nullable=False),
        sa.Column("failed_requests", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_progress_job_id_jobs"),
        sa.PrimaryKeyConstraint("id", name="pk_progress"),
    )
    op.create_index("ix_progress_job_id_id", "progress", ["job_id", "id"])
    op.create_table(
        "sync_state",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_sync_state"),
    )


def downgrade() -> None:
    op.drop_table("sync_state")
    op.drop_index("ix_progress_job_id_id", table_name="progress")
    op.drop_table("progress")
    op.drop_table("transitions")
    op.drop_index("ix_jobs_created_at_id", table_name="jobs")
    op.drop_index("ix_jobs_status", table_name="jobs")
    op.drop_table("jobs")
