"""PostgreSQL: leave half of each ``jobs`` page free (``fillfactor`` 50).

A poll cycle rewrites the row of every job that moved, every cycle. PostgreSQL writes each
update as a new row version; with room left on the row's page the new version goes there
without touching the indexes (a HOT update) and the old one is pruned in place, so the
table stays the size of its live rows. On full pages every version goes elsewhere and the
table grows until VACUUM, every cycle. Measured over the simulated day of benchmark figure 8
(``tests/benchmarks/progress.py``) with 1,000 jobs: the ``jobs`` table and its indexes end
at 0.9 MB with it, 5.8 MB without.

The setting applies to pages written from now on; ``VACUUM FULL jobs`` rewrites the
existing ones at once. SQLite updates rows in place and has no such setting.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE jobs SET (fillfactor = 50)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE jobs RESET (fillfactor)")
