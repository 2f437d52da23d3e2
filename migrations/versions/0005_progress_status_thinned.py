"""Progress samples carry the job's status, and the stored history is thinned once.

A sample was stored every cycle a running job's counters moved: at 10,000 active jobs polled
every 60 s, 14 million rows and about 2 GB a day. From now on a job's newest sample is
overwritten while it adds nothing to the curve (``batchwatch.transitions.replaces_newest``);
this revision thins the samples already stored by the same rule
(``batchwatch.store.thinning``) and dates the kept ones with the status the job's
transitions give them. The thinned samples cannot be restored by the downgrade.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from batchwatch.store.thinning import thin_progress

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("progress", sa.Column("status", sa.String(32)))
    thin_progress(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table("progress") as batch:
        batch.drop_column("status")
