"""Events: the outbox, the endpoints that take them, their deliveries, stuck-job alerts.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("occurred_at", _UTC, nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_events_job_id_jobs"),
        sa.PrimaryKeyConstraint("seq", name="pk_events"),
        sa.UniqueConstraint("id", name="uq_events_id"),
    )
    op.create_table(
        "endpoints",
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("cursor", sa.Integer(), nullable=False),
        sa.Column("disabled_at", _UTC),
        sa.Column("disabled_reason", sa.Text()),
        sa.PrimaryKeyConstraint("name", name="pk_endpoints"),
    )
    op.create_table(
        "deliveries",
        sa.Column("endpoint", sa.String(512), nullable=False),
        sa.Column("event_seq", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", _UTC, nullable=False),
        sa.Column("first_attempt_at", _UTC),
        sa.Column("last_attempt_at", _UTC),
        sa.Column("last_status", sa.Integer()),
        sa.Column("last_error", sa.Text()),
        sa.ForeignKeyConstraint(
            ["event_seq"], ["events.seq"], name="fk_deliveries_event_seq_events"
        ),
        sa.PrimaryKeyConstraint("endpoint", "event_seq", name="pk_deliveries"),
    )
    op.create_index(
        "ix_deliveries_endpoint_state_event_seq",
        "deliveries",
        ["endpoint", "state", "event_seq"],
    )
    op.create_index(
        "ix_deliveries_endpoint_job_id_event_seq",
        "deliveries",
        ["endpoint", "job_id", "event_seq"],
    )
    op.create_table(
        "job_alerts",
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("completed", sa.BigInteger(), nullable=False),
        sa.Column("moved_at", _UTC, nullable=False),
        sa.Column("stalled_at", _UTC),
        sa.Column("deadline_at", _UTC),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_job_alerts_job_id_jobs"),
        sa.PrimaryKeyConstraint("job_id", name="pk_job_alerts"),
    )


def downgrade() -> None:
    op.drop_table("job_alerts")
    op.drop_index("ix_deliveries_endpoint_job_id_event_seq", table_name="deliveries")
    op.drop_index("ix_deliveries_endpoint_state_event_seq", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_table("endpoints")
    op.drop_table("events")
