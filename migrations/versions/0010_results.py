"""Results of ended jobs: their state, their downloaded files and the ledger of their requests.

Jobs that ended before this revision get no results row: the results worker starts reading
the transition feed after the last transition stored now (``sync_state.results_cursor``).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "results",
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        *(sa.Column(name, sa.Integer()) for name in ("total", "succeeded", "failed", "not_run")),
        *(
            sa.Column(name, sa.BigInteger())
            for name in ("prompt_tokens", "completion_tokens", "total_tokens")
        ),
        sa.Column("ledger_rows", sa.JSON()),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_results_job_id_jobs"),
        sa.PrimaryKeyConstraint("job_id", name="pk_results"),
    )
    op.create_index("ix_results_state_next_attempt_at", "results", ["state", "next_attempt_at"])
    op.create_table(
        "result_files",
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("n", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("file_id", sa.String(64)),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("downloaded_at", _UTC, nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_result_files_job_id_jobs"),
        sa.PrimaryKeyConstraint("job_id", "kind", "n", name="pk_result_files"),
    )
    op.create_table(
        "ledger",
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("n", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("custom_id", sa.Text()),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("status_code", sa.Integer()),
        sa.Column("error_message", sa.Text()),
        sa.Column("error_code", sa.Text()),
        sa.Column("prompt_tokens", sa.Integer()),
        sa.Column("completion_tokens", sa.Integer()),
        sa.Column("total_tokens", sa.Integer()),
        sa.Column("raw", sa.Text()),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("duplicate", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_ledger_job_id_jobs"),
        sa.PrimaryKeyConstraint("job_id", "n", name="pk_ledger"),
    )
    op.create_index("ix_ledger_job_id_outcome_n", "ledger", ["job_id", "outcome", "n"])
    # History that predates results is not fetched: the worker reads the feed from here on.
    op.execute(
        "INSERT INTO sync_state (name, value)"
        " SELECT 'results_cursor', CAST(COALESCE(MAX(id), 0) AS TEXT) FROM transitions"
    )


def downgrade() -> None:
    op.execute("DELETE FROM sync_state WHERE name = 'results_cursor'")
    op.drop_index("ix_ledger_job_id_outcome_n", table_name="ledger")
    op.drop_table("ledger")
    op.drop_table("result_files")
    op.drop_index("ix_results_state_next_attempt_at", table_name="results")
    op.drop_table("results")
