"""Providers: every job says which API it lives in; transitions keep the provider's own
statuses beside the common ones.

Jobs recorded so far are Mistral's, whose statuses are the common ones: their transitions'
provider statuses are the same values (so every transition row has them, old or new).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# ADD COLUMN in place, not a batch table copy: ``jobs`` is referenced by the history tables
# and carries the row-version triggers (0008).


def upgrade() -> None:
    op.add_column(
        "jobs", sa.Column("provider", sa.String(16), nullable=False, server_default="mistral")
    )
    op.add_column("transitions", sa.Column("from_provider_status", sa.String(64)))
    op.add_column("transitions", sa.Column("to_provider_status", sa.String(64)))
    op.execute(
        "UPDATE transitions SET from_provider_status = from_status, "
        "to_provider_status = to_status"
    )


def downgrade() -> None:
    op.drop_column("transitions", "to_provider_status")
    op.drop_column("transitions", "from_provider_status")
    op.drop_column("jobs", "provider")
