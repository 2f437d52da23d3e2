"""Rename ``jobs.source`` to ``jobs.origin``.

The column says how batchwatch came to know a job (discovered, created, tracked), while
``transitions.source`` says what recorded one change (the poller or an action): one word
held two meanings. Only the name changes; no value does.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A batch operation: SQLite renames through a table copy where ALTER cannot.
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("source", new_column_name="origin")


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("origin", new_column_name="source")
