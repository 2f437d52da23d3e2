"""Create intents (idempotent creates) and the actions log (create, cancel, track).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "create_intents",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("job_id", sa.String(64)),
        sa.Column("error", sa.Text()),
        sa.Column("error_status", sa.Integer()),
        sa.Column("requested_by", sa.String(32), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_create_intents"),
        sa.UniqueConstraint("request_id", name="uq_create_intents_request_id"),
    )
    op.create_table(
        "actions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(32), nullable=False),
        sa.Column("requested_at", _UTC, nullable=False),
        sa.Column("status_after", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_actions_job_id_jobs"),
        sa.PrimaryKeyConstraint("id", name="pk_actions"),
    )
    op.create_index("ix_actions_job_id_id", "actions", ["job_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_actions_job_id_id", table_name="actions")
    op.drop_table("actions")
    op.drop_table("create_intents")
