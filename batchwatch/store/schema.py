"""The tables. The migrations in ``migrations/`` must produce exactly this (a test checks it).

``jobs`` holds each job's latest snapshot; ``transitions`` is append-only history: rows are
inserted, never updated or deleted. ``progress`` holds each job's samples, numbered within
the job; it is append-only but for the newest sample of each job, which the next observation
may overwrite while it adds nothing to the curve (``transitions.replaces_newest``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

from batchwatch.store.codecs import _sqlite_time, decode_time, utc

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are stored in UTC and always come back timezone-aware, in the one form
    ``codecs`` defines, which the bulk statements also write and the row decoder reads.

    SQLite has no time zones: without this, a value written aware would be read back naive
    and compare wrongly against ``now``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    # The codecs replace the processing of ``impl`` (SQLite's text form is theirs, not a
    # second copy of it in SQLAlchemy's DATETIME): ``impl`` only names the column type.
    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], Any]:
        return _sqlite_time if dialect.name == "sqlite" else utc

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any]:
        return decode_time


jobs = Table(
    "jobs",
    metadata,
    Column("id", String(64), primary_key=True),
    # Latest known Mistral status (never UNKNOWN once a real one was seen); raw_status is the
    # string exactly as Mistral last sent it, so an unrecognised value is still visible.
    Column("status", String(32), nullable=False),
    Column("raw_status", String(64), nullable=False),
    Column("endpoint", String(128), nullable=False),
    Column("model", String(256)),
    Column("agent_id", String(256)),
    Column("input_files", JSON, nullable=False),
    Column("job_metadata", JSON),
    Column("output_file", String(64)),
    Column("error_file", String(64)),
    Column("errors", JSON, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("started_at", BigInteger),
    Column("completed_at", BigInteger),
    Column("total_requests", BigInteger, nullable=False),
    Column("completed_requests", BigInteger, nullable=False),
    Column("succeeded_requests", BigInteger, nullable=False),
    Column("failed_requests", BigInteger, nullable=False),
    # Which API the job lives in (mistral, openai, anthropic): status and raw_status are its
    # common status and its provider's own (migration 0012).
    Column("provider", String(16), nullable=False, server_default="mistral"),
    # batchwatch's own bookkeeping
    # How batchwatch came to know the job: discovered, created or tracked (models.JobOrigin).
    Column("origin", String(16), nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("transition_count", Integer, nullable=False),
    Column("deleted_upstream_at", UTCDateTime),
    # Moved by one by every UPDATE of the row, which the database enforces (migration 0008's
    # triggers refuse any other): the writer's cache of rows (``rowcache``) trusts a row
    # while its version has not moved.
    Column("row_version", Integer, nullable=False, server_default="0"),
    # Serves the poller's "which tracked jobs are active", and the API's status filter in
    # Mistral's default order (newest first) without sorting every matching row.
    Index("ix_jobs_status_created_at_id", "status", "created_at", "id"),
    # Serves the API's status + model filter in the same order: the page without a sort,
    # and without reading the jobs of other models (migration 0004).
    Index("ix_jobs_status_model_created_at_id", "status", "model", "created_at", "id"),
    # Serves the API's list ordered newest first (Mistral's default order_by=-created).
    Index("ix_jobs_created_at_id", "created_at", "id"),
    # PostgreSQL: half of each page left free, so the row a cycle rewrites gets its new
    # version on its own page and the old one is pruned there (migration 0007).
    postgresql_with={"fillfactor": 50},
)

transitions = Table(
    "transitions",
    metadata,
    # The autoincrement id is the feed cursor: GET /v1/transitions?after=ID reads in this order.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(64), ForeignKey("jobs.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("from_status", String(32)),
    Column("to_status", String(32), nullable=False),
    Column("observed_at", UTCDateTime, nullable=False),
    Column("last_seen_before", UTCDateTime),
    Column("source", String(16), nullable=False),
    Column("detail", Text),
    # The provider's own statuses either side, as sent (from/to_status are common ones).
    Column("from_provider_status", String(64)),
    Column("to_provider_status", String(64)),
    # The backstop of compare-and-set: a job's n-th transition exists at most once. Its index
    # also serves "one job's transitions, oldest first".
    UniqueConstraint("job_id", "seq", name="uq_transitions_job_id_seq"),
)

progress = Table(
    "progress",
    metadata,
    # Keyed by (job_id, seq), its one index: it serves "one job's samples, oldest first" and
    # the writer's "each job's two newest samples" (read from its end). No id of its own,
    # whose index was a quarter of the table's size on PostgreSQL (migration 0009).
    Column("job_id", String(64), ForeignKey("jobs.id"), primary_key=True),
    # The sample's number within its job, in the order samples are stored: 1, 2, 3, ...
    # (never reused; not necessarily consecutive, as a thinning may leave gaps).
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("observed_at", UTCDateTime, nullable=False),
    # 4-byte integers (``models.MAX_COUNT``), unlike the job's own counters: of the 88 bytes
    # a sample takes on PostgreSQL, 16 fewer (migration 0009).
    Column("total_requests", Integer, nullable=False),
    Column("completed_requests", Integer, nullable=False),
    Column("succeeded_requests", Integer, nullable=False),
    Column("failed_requests", Integer, nullable=False),
    # The job's status when the sample was observed, so the first and last sample of every
    # status are kept when the history is thinned (``transitions.replaces_newest``). NULL on
    # samples stored before migration 0005 that no transition dates.
    Column("status", String(32)),
)

sync_state = Table(
    "sync_state",
    metadata,
    # Small named values the poller keeps between cycles (the discovery watermark).
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

create_intents = Table(
    "create_intents",
    metadata,
    # One row per Idempotency-Key, written before the create goes upstream, so a create
    # whose response was lost can be found again (by its request_id tag) instead of re-sent.
    Column("key", String(255), primary_key=True),
    # Put into the job's metadata upstream as batchwatch_request_id.
    Column("request_id", String(36), nullable=False, unique=True),
    Column("request_hash", String(64), nullable=False),
    Column("body", JSON, nullable=False),
    Column("state", String(16), nullable=False),  # pending | created | failed
    Column("job_id", String(64)),
    Column("error", Text),
    Column("error_status", Integer),
    Column("requested_by", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

actions = Table(
    "actions",
    metadata,
    # Who asked batchwatch to do what to a job, and when: with the transitions this shows
    # how long a cancellation took to land.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(64), ForeignKey("jobs.id"), nullable=False),
    Column("action", String(16), nullable=False),  # create | cancel | track
    Column("requested_by", String(32), nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("status_after", String(64), nullable=False),
    # Serves "one job's actions, oldest first".
    Index("ix_actions_job_id_id", "job_id", "id"),
)

# ---- results (issue 11): files downloaded at a job's end, and the ledger of its requests --

results = Table(
    "results",
    metadata,
    # One row per ended job whose results batchwatch fetches: written by the results worker
    # when it reads the job's terminal transition from the feed (``sync_state``'s
    # ``results_cursor`` marks how far), so no ending is missed across restarts.
    Column("job_id", String(64), ForeignKey("jobs.id"), primary_key=True),
    Column("state", String(16), nullable=False),  # pending | downloading | ready | unavailable
    # unavailable: why (a file gone upstream); pending: why the last attempt failed.
    Column("reason", Text),
    Column("attempts", Integer, nullable=False),
    # pending: not tried again before this instant (backoff after a failed attempt).
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # ready: the ledger's counts and token totals, summed once at ingest.
    Column("total", Integer),
    Column("succeeded", Integer),
    Column("failed", Integer),
    Column("not_run", Integer),
    Column("prompt_tokens", BigInteger),
    Column("completion_tokens", BigInteger),
    Column("total_tokens", BigInteger),
    # ready: the ledger's rows by outcome, duplicates included ({"failed": 12, ...}): a
    # page's total without counting the rows again.
    Column("ledger_rows", JSON),
    # Serves the worker's "the pending jobs due now, oldest due first".
    Index("ix_results_state_next_attempt_at", "state", "next_attempt_at"),
)

result_files = Table(
    "result_files",
    metadata,
    # Each file of a ready job's results, complete on disk under ``path`` with this sha256.
    Column("job_id", String(64), ForeignKey("jobs.id"), primary_key=True),
    Column("kind", String(16), primary_key=True),  # input | output | error
    # Jobs can have several input files: the n-th of its kind, from 1.
    Column("n", Integer, primary_key=True, autoincrement=False),
    Column("file_id", String(64)),  # None: inline ``outputs``, not a file upstream
    Column("bytes", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("path", Text, nullable=False),
    Column("downloaded_at", UTCDateTime, nullable=False),
)

ledger = Table(
    "ledger",
    metadata,
    # One row per request of a ready job (``results/ledger.py`` builds them), in the order
    # of the files: output lines, error lines, then the requests that never ran.
    Column("job_id", String(64), ForeignKey("jobs.id"), primary_key=True),
    Column("n", Integer, primary_key=True, autoincrement=False),
    Column("custom_id", Text),  # None only for a line whose custom_id could not be read
    Column("outcome", String(16), nullable=False),  # succeeded | failed | not_run
    Column("status_code", Integer),
    Column("error_message", Text),
    Column("error_code", Text),
    Column("prompt_tokens", Integer),
    Column("completion_tokens", Integer),
    Column("total_tokens", Integer),
    # A line whose shape was not understood, as text: kept, never dropped.
    Column("raw", Text),
    # Where the row comes from: output, error or input (not_run), and the line's number.
    Column("source", String(8), nullable=False),
    Column("line", Integer, nullable=False),
    # An earlier row of the job names the same custom_id: the request's row is the first.
    Column("duplicate", Boolean, nullable=False),
    # Serves "a job's failed requests, a page at a time" and the counts by outcome.
    Index("ix_ledger_job_id_outcome_n", "job_id", "outcome", "n"),
)

events = Table(
    "events",
    metadata,
    # The outbox: each row is written in the transaction of what it reports (``events.py``).
    # ``seq`` is the feed's cursor (GET /v1/events?after=SEQ) and the order of delivery;
    # writes are serialised (``Store.write``), so seq order is commit order.
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("type", String(32), nullable=False),
    Column("job_id", String(64), ForeignKey("jobs.id"), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("data", JSON, nullable=False),
)

endpoints = Table(
    "endpoints",
    metadata,
    # Each configured webhook (its URL) or hook (``hook:`` and its argv): how far the outbox
    # was fanned out into its deliveries, and whether it is disabled (a 410 Gone).
    Column("name", String(512), primary_key=True),
    Column("cursor", Integer, nullable=False),
    Column("disabled_at", UTCDateTime),
    Column("disabled_reason", Text),
)

deliveries = Table(
    "deliveries",
    metadata,
    # One row per event and endpoint that takes it: pending until a 2xx (or exit 0), then
    # delivered; dead after 15 attempts or 24 hours. Redelivery makes it pending again.
    Column("endpoint", String(512), primary_key=True),
    Column("event_seq", Integer, ForeignKey("events.seq"), primary_key=True),
    Column("job_id", String(64), nullable=False),
    Column("state", String(16), nullable=False),  # pending | delivered | dead
    Column("attempts", Integer, nullable=False),
    # pending: not sent before this instant (backoff, or the endpoint's Retry-After).
    Column("next_at", UTCDateTime, nullable=False),
    Column("first_attempt_at", UTCDateTime),
    Column("last_attempt_at", UTCDateTime),
    # The last answer: an HTTP status, or a hook's exit code; and what went wrong.
    Column("last_status", Integer),
    Column("last_error", Text),
    # Serves the dispatcher's "this endpoint's pending deliveries, in outbox order" and the
    # counts by state.
    Index("ix_deliveries_endpoint_state_event_seq", "endpoint", "state", "event_seq"),
    # Serves "does an earlier delivery of this job wait for its backoff" (``events.due``).
    Index("ix_deliveries_endpoint_job_id_event_seq", "endpoint", "job_id", "event_seq"),
)

job_alerts = Table(
    "job_alerts",
    metadata,
    # What stuck-job detection knows of each active job: its completed count when it last
    # moved, and the alerts raised since (each once per condition, cleared when it moves).
    Column("job_id", String(64), ForeignKey("jobs.id"), primary_key=True),
    Column("status", String(32), nullable=False),
    Column("completed", BigInteger, nullable=False),
    Column("moved_at", UTCDateTime, nullable=False),
    Column("stalled_at", UTCDateTime),
    Column("deadline_at", UTCDateTime),
)

team_lease = Table(
    "team_lease",
    metadata,
    # Team mode (PostgreSQL): the one row ``leader`` says which daemon polls, until when, and
    # under which epoch (one more at each change of holder; writes made for the leader carry
    # it, see ``store/lease.py``). Times are the database server's clock.
    Column("name", String(32), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

team_members = Table(
    "team_members",
    metadata,
    # Every daemon serving the database, as it last said: how to reach it, and when it was
    # last seen (each renews its row with the lease's rhythm; rows long unseen are dropped).
    Column("name", String(200), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("api_url", String(512), nullable=False),
    Column("version", String(32), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("seen_at", UTCDateTime, nullable=False),
)
