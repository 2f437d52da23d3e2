"""Index (status, model, created_at, id) for the job list filtered by status and model.

``GET /v1/batch/jobs?status=S&model=M`` (Mistral's default order, newest first) was read
through (status, created_at, id), checking the model of each job in turn: cheap for a common
model, but a model with few jobs of the status made it walk every one of them (10,000
RUNNING jobs, 100 of one model: 10 ms in SQLite instead of 0.5 ms). With the model in front
of the order columns, the page is read in index order and the count from the index alone.
It also serves everything (status, model) served, which it replaces.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_jobs_status_model_created_at_id", "jobs", ["status", "model", "created_at", "id"]
    )
    op.drop_index("ix_jobs_status_model", table_name="jobs")


def downgrade() -> None:
    op.create_index("ix_jobs_status_model", "jobs", ["status", "model"])
    op.drop_index("ix_jobs_status_model_created_at_id", table_name="jobs")
