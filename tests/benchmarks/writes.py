"""Figure 3: one cycle's write when 10,000 jobs changed status, in one transaction.

Each repetition stores 10,000 new RUNNING jobs (not timed), then times what ``poll_once``
does with a cycle that saw all of them finish: ``Store.write()`` opening the transaction
(SQLite ``BEGIN IMMEDIATE``; PostgreSQL's advisory lock), ``Writer.load`` of the stored
rows, ``plan`` (10,000 transitions, 10,000 progress samples), ``Writer.apply``, commit.

On a real SQLite file always; on PostgreSQL when ``BATCHWATCH_TEST_DATABASE_URL`` is set, in
a throwaway schema (``?options=-csearch_path%3D<schema>``) created and dropped here.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from batchwatch.models import BatchError, Counters, JobOrigin, JobStatus, RemoteJob
from batchwatch.store import Store, safe_url
from batchwatch.store.schema import transitions
from batchwatch.transitions import plan
from tests.benchmarks.common import Context, Row, median, say, spread
from tests.benchmarks.profiling import profile_here
from tests.helpers import pg_schema

CHANGED = 10_000
TARGET_SECONDS = 1.0


def _job(job_id: str, status: JobStatus, done: int) -> RemoteJob:
    ended = status.is_terminal
    return RemoteJob(
        id=job_id,
        status=status,
        raw_status=status.value,
        endpoint="/v1/chat/completions",
        input_files=(str(uuid.uuid4()),),
        model="mistral-small-latest",
        agent_id=None,
        metadata={"team": "search"},
        output_file=str(uuid.uuid4()) if ended else None,
        error_file=None,
        errors=(BatchError("one failed", 1),) if status is JobStatus.FAILED else (),
        created_at=1_780_000_000,
        started_at=1_780_000_060,
        completed_at=1_780_003_600 if ended else None,
        counters=Counters(
            total=1000, completed=done, succeeded=done - done // 50, failed=done // 50
        ),
    )


def _record(store: Store, observed: list[RemoteJob], now: datetime) -> dict[str, float]:
    """The write of one cycle, as ``poll_once`` does it; the time of each step."""
    steps: dict[str, float] = {}
    started = time.perf_counter()
    with store.write() as writer:
        opened = time.perf_counter()
        before = writer.load({job.id for job in observed})
        loaded = time.perf_counter()
        changes = plan(before, observed, now)
        planned = time.perf_counter()
        writer.apply(changes, now, JobOrigin.DISCOVERED)
        applied = time.perf_counter()
    done = time.perf_counter()
    steps = {
        "begin": opened - started,
        "load": loaded - opened,
        "plan": planned - loaded,
        "apply": applied - planned,
        "commit": done - applied,
        "total": done - started,
    }
    return steps


def _round(store: Store, now: datetime) -> tuple[dict[str, float], int]:
    ids = [str(uuid.uuid4()) for _ in range(CHANGED)]
    _record(store, [_job(i, JobStatus.RUNNING, 100) for i in ids], now)
    finished = [_job(i, JobStatus.SUCCESS, 1000) for i in ids]
    steps = _record(store, finished, now + timedelta(minutes=1))
    with store.reading() as conn:
        query = (
            select(func.count())
            .select_from(transitions)
            .where(transitions.c.job_id.in_(ids[:500]), transitions.c.to_status == "SUCCESS")
        )
        recorded = int(conn.execute(query).scalar_one())
    return steps, recorded


def measure(ctx: Context, url: str, label: str) -> Row:
    repeats = ctx.pick(5, 2)
    store = Store(url)
    store.migrate()
    try:
        now = datetime.now(UTC)
        _round(store, now)  # warm-up: statement caches, the first pages of every index
        rounds = []
        for n in range(repeats):
            steps, recorded = _round(store, now + timedelta(hours=n + 1))
            if recorded != 500:
                raise AssertionError(f"{label}: {recorded} of 500 sampled transitions recorded")
            rounds.append(steps)
        if ctx.profile:
            batch = [_job(str(uuid.uuid4()), JobStatus.RUNNING, 100) for _ in range(CHANGED)]
            _record(store, batch, now)
            ended = [replace(j, status=JobStatus.SUCCESS, raw_status="SUCCESS") for j in batch]
            profile_here(
                f"one 10,000-transition write on {label}",
                lambda: _record(store, ended, now + timedelta(days=1)),
                ctx.workdir,
            )
    finally:
        store.close()
    totals = [r["total"] for r in rounds]
    parts = ", ".join(
        f"{k} {median([r[k] for r in rounds]):.3f}" for k in rounds[0] if k != "total"
    )
    say(f"  {label}: {spread(totals)} s per write  ({parts})")
    return Row(
        f"3. write of {CHANGED:,} status changes, {label}",
        f"{median(totals):.3f} s (one transaction)",
        f"<= {TARGET_SECONDS} s",
        median(totals) <= TARGET_SECONDS,
    )


def figure(ctx: Context) -> list[Row]:
    say(f"Figure 3 - one write of {CHANGED:,} status changes (load + plan + apply + commit)")
    rows = [measure(ctx, f"sqlite:///{ctx.workdir / 'writes.db'}", "SQLite file")]
    base = os.environ.get("BATCHWATCH_TEST_DATABASE_URL")
    if base:
        with pg_schema(base, "bw_bench") as url:
            say(f"  PostgreSQL: {safe_url(base)} (throwaway schema)")
            rows.append(measure(ctx, url, "PostgreSQL"))
    else:
        say("  PostgreSQL: skipped, BATCHWATCH_TEST_DATABASE_URL is not set")
        rows.append(Row("3. write, PostgreSQL", "skipped: BATCHWATCH_TEST_DATABASE_URL unset"))
    say()
    return rows
