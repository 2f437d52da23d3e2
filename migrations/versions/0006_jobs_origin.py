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


# RENAME COLUMN in place (SQLite 3.25+, PostgreSQL): a batch table copy would have to drop
# ``jobs``, which the history tables reference, and SQLite refuses that with foreign keys on.


def upgrade() -> None:
    op.execute("ALTER TABLE jobs RENAME COLUMN source TO origin")


def downgrade() -> None:
    op.execute("ALTER TABLE jobs RENAME COLUMN origin TO source")
