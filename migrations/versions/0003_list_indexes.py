"""Indexes for the filtered job list: (status, created_at, id) and (status, model).

The list filtered by status had to sort every matching row (10,000 RUNNING jobs: 43 ms);
with the status prefix in front of the order columns it reads one page in index order.
(status, created_at, id) also serves every lookup the old index on status served.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_jobs_status_created_at_id", "jobs", ["status", "created_at", "id"])
    op.create_index("ix_jobs_status_model", "jobs", ["status", "model"])
    op.drop_index("ix_jobs_status", table_name="jobs")


def downgrade() -> None:
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.drop_index("ix_jobs_status_model", table_name="jobs")
    op.drop_index("ix_jobs_status_created_at_id", table_name="jobs")
