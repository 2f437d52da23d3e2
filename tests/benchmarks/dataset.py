"""A large history, generated fast: bulk inserts straight into the tables of
``batchwatch/schema.py`` of a SQLite file that ``Store.migrate()`` created.

Going through the poller would take hours for 1,000,000 transitions; the rows written here
are what the store itself writes (the same columns, SQLAlchemy's SQLite storage formats),
and ``generate`` reads a few back through ``Store`` to prove it.

Transitions are inserted in time order across all jobs, as a daemon records them, so one
job's transitions are scattered over the table instead of sitting on one page.
"""

from __future__ import annotations

import json
import random
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.dialects import sqlite

from batchwatch.models import ACTIVE_STATUSES, JobStatus
from batchwatch.store import Store
from batchwatch.store.schema import jobs, transitions

MODELS = ("mistral-small-latest", "mistral-large-latest", "codestral-latest", "ministral-8b-latest")
TEAMS = ("search", "ads", "support", "research")
S = JobStatus
#: Current status of the stored jobs, with its share: mostly finished, some still moving.
HISTORY_MIX: tuple[tuple[JobStatus, float], ...] = (
    (S.RUNNING, 0.10),
    (S.QUEUED, 0.03),
    (S.CANCELLATION_REQUESTED, 0.01),
    (S.SUCCESS, 0.70),
    (S.FAILED, 0.08),
    (S.TIMEOUT_EXCEEDED, 0.03),
    (S.CANCELLED, 0.05),
)
#: Only ended jobs: the history behind a daemon whose active jobs come from the simulator.
ENDED_MIX: tuple[tuple[JobStatus, float], ...] = (
    (S.SUCCESS, 0.80),
    (S.FAILED, 0.08),
    (S.TIMEOUT_EXCEEDED, 0.04),
    (S.CANCELLED, 0.08),
)
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class History:
    path: Path
    url: str
    jobs: int
    transitions: int
    ids: list[str]
    by_status: dict[str, int]
    by_model: dict[str, int]


def _stamp(moment: datetime) -> str:
    # SQLAlchemy's SQLite DATETIME storage format ("%Y-%m-%d %H:%M:%S.%f"); UTCDateTime
    # stores UTC without an offset. isoformat is the same text, ten times faster.
    return moment.replace(tzinfo=None).isoformat(" ", "microseconds")


def _insert_sql(table: Table) -> tuple[str, list[str]]:
    """The table's own INSERT (every column), compiled for SQLite, and its column order."""
    names = [c.name for c in table.columns]
    compiled = insert(table).values(dict.fromkeys(names)).compile(dialect=sqlite.dialect())
    order = list(compiled.positiontup or [])
    return str(compiled), order


def _path_to(status: JobStatus, length: int) -> list[JobStatus]:
    """``length`` statuses ending in ``status``. Longer than any real lifecycle when asked for
    many (the earlier ones alternate QUEUED/RUNNING): only the row count matters here."""
    tail = [status] if status in (S.QUEUED, S.RUNNING) else [S.RUNNING, status]
    if status is S.CANCELLED:
        tail = [S.RUNNING, S.CANCELLATION_REQUESTED, S.CANCELLED]
    if status is S.CANCELLATION_REQUESTED:
        tail = [S.RUNNING, S.CANCELLATION_REQUESTED]
    head = [S.QUEUED if n % 2 == 0 else S.RUNNING for n in range(max(0, length - len(tail)))]
    return (head + tail)[-length:] if length else []


def generate(
    path: Path,
    job_count: int,
    transition_count: int,
    *,
    mix: Sequence[tuple[JobStatus, float]] = HISTORY_MIX,
    seed: int = 7,
) -> History:
    """Create ``path`` at the latest schema and fill it. Jobs in an active status get
    ``deleted_upstream_at`` so a daemon pointed at an empty simulator leaves them alone
    instead of spending its first cycle on one 404 ``get`` each (they read the same)."""
    url = f"sqlite:///{path}"
    store = Store(url)
    store.migrate()
    store.close()
    rng = random.Random(seed)
    statuses = rng.choices([s for s, _ in mix], weights=[w for _, w in mix], k=job_count)
    per_job = [transition_count // job_count] * job_count
    for n in rng.sample(range(job_count), transition_count % job_count):
        per_job[n] += 1
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(job_count)]
    models = [MODELS[n % len(MODELS)] for n in range(job_count)]
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        # Loading only: no journal (a failed load is thrown away), index pages kept in memory.
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -400000")
        conn.execute("BEGIN")
        job_sql, job_cols = _insert_sql(jobs)
        conn.executemany(
            job_sql,
            _job_rows(ids, statuses, models=models, per_job=per_job, order=job_cols, rng=rng),
        )
        t_sql, t_cols = _insert_sql(transitions)
        conn.executemany(t_sql, _transition_rows(ids, statuses, per_job, t_cols))
        # As after an upgrade to migration 0010: results are fetched for jobs that end from
        # now on, not for this history (whose files the simulator never had).
        conn.execute(
            "UPDATE sync_state SET value = (SELECT CAST(MAX(id) AS TEXT) FROM transitions)"
            " WHERE name = 'results_cursor'"
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode = WAL")  # as the store runs it
    finally:
        conn.close()
    _check(url, ids[0], per_job[0], statuses[0])
    by_status: dict[str, int] = {}
    for s in statuses:
        by_status[s.value] = by_status.get(s.value, 0) + 1
    by_model = {m: models.count(m) for m in MODELS}
    return History(path, url, job_count, transition_count, ids, by_status, by_model)


def _created(n: int) -> datetime:
    return _EPOCH + timedelta(seconds=60 * n)  # one job a minute, oldest first


def _job_rows(
    ids: list[str],
    statuses: list[JobStatus],
    *,
    models: list[str],
    per_job: list[int],
    order: list[str],
    rng: random.Random,
) -> Iterator[tuple[Any, ...]]:
    for n, job_id in enumerate(ids):
        status = statuses[n]
        created = _created(n)
        ended = status.is_terminal
        total = rng.randrange(10, 5000)
        done = total if status is S.SUCCESS else (0 if status is S.QUEUED else total // 2)
        failed = done // 50
        last_seen = created + timedelta(hours=2)
        row: dict[str, Any] = {
            "id": job_id,
            "status": status.value,
            "raw_status": status.value,
            "endpoint": "/v1/chat/completions",
            "model": models[n],
            "agent_id": None,
            "input_files": json.dumps([str(uuid.UUID(int=rng.getrandbits(128), version=4))]),
            "job_metadata": json.dumps({"team": TEAMS[n % len(TEAMS)]}),
            "output_file": str(uuid.UUID(int=n, version=4)) if ended and done else None,
            "error_file": None,
            "errors": "[]",
            "created_at": int(created.timestamp()),
            "started_at": None if status is S.QUEUED else int(created.timestamp()) + 60,
            "completed_at": int(last_seen.timestamp()) if ended else None,
            "total_requests": total,
            "completed_requests": done,
            "succeeded_requests": done - failed,
            "failed_requests": failed,
            "origin": "discovered",
            "first_seen_at": _stamp(created),
            "last_seen_at": _stamp(last_seen),
            "transition_count": per_job[n],
            "deleted_upstream_at": _stamp(last_seen) if status in ACTIVE_STATUSES else None,
            "row_version": 0,
        }
        yield tuple(row[c] for c in order)


_TRANSITION_COLUMNS = [
    "id",
    "job_id",
    "seq",
    "from_status",
    "to_status",
    "observed_at",
    "last_seen_before",
    "source",
    "detail",
]


def _transition_rows(
    ids: list[str], statuses: list[JobStatus], per_job: list[int], order: list[str]
) -> Iterator[tuple[Any, ...]]:
    # Built as tuples in the table's column order (a dict per row doubles the load time).
    if order != _TRANSITION_COLUMNS:
        raise AssertionError(f"schema.transitions changed its columns: {order}")
    paths = [[s.value for s in _path_to(statuses[n], per_job[n])] for n in range(len(ids))]
    rounds = max(per_job, default=0)
    # Job n's transition seq is observed 30 s x (2n + seq) after the epoch: one formatted
    # stamp per 30 s tick, not two per row.
    ticks = [_stamp(_EPOCH + timedelta(seconds=30 * t)) for t in range(2 * len(ids) + rounds + 1)]
    next_id = 1
    for seq in range(1, rounds + 1):  # round by round: time order
        for n, job_id in enumerate(ids):
            if seq > per_job[n]:
                continue
            path = paths[n]
            tick = 2 * n + seq
            yield (
                next_id,
                job_id,
                seq,
                path[seq - 2] if seq > 1 else None,
                path[seq - 1],
                ticks[tick],
                ticks[tick - 1] if seq > 1 else None,
                "poll",
                None,
            )
            next_id += 1


def _check(url: str, job_id: str, count: int, status: JobStatus) -> None:
    """The generated rows read back through the store exactly as the daemon's own do."""
    store = Store(url)
    try:
        job = store.get_job(job_id)
        history = store.transitions(job_id)
    finally:
        store.close()
    if job is None or job.status is not status or job.transition_count != count:
        raise AssertionError(f"generated job {job_id} reads back wrong: {job}")
    if len(history) != count or (history and history[-1].to_status is not status):
        raise AssertionError(f"generated transitions of {job_id} read back wrong: {history}")
    if history and history[0].observed_at.tzinfo is None:
        raise AssertionError("generated timestamps read back naive")
