"""Team mode: the leader's lease and the daemons serving one database.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "team_lease",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("acquired_at", _UTC, nullable=False),
        sa.Column("expires_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_team_lease"),
    )
    op.create_table(
        "team_members",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("api_url", sa.String(512), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("started_at", _UTC, nullable=False),
        sa.Column("seen_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_team_members"),
    )


def downgrade() -> None:
    op.drop_table("team_members")
    op.drop_table("team_lease")
