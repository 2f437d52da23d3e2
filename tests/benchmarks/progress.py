"""Figure 8: the progress history of 10,000 active jobs over a simulated day stays small.

Each job is observed every 60 s for a day (1,440 observations) along a curve of its own
kind: steady (moving every cycle, not done by the evening), bursty (long idle stretches,
short fast runs), stalled (moving, then stuck for hours, then moving again) and finishing
(queued, run to the end, then SUCCESS or FAILED and never polled again); failures come at
their own pace, sometimes in streaks. Cycle after cycle the observations go through the
real planner and ``Writer`` (``load``, ``plan``, ``apply``), one transaction per cycle, as
``poll_once`` writes them. A job whose counters and status did not move since the last
cycle is left out of its cycle: it would only move ``last_seen_at`` and writes no sample.

Figures: samples per job (max, mean), the database's growth over the day (SQLite: the
file after a checkpoint; PostgreSQL: the tables and indexes, each table vacuumed when
autovacuum would vacuum it in real time), and the worst distance, in % of the job's total
requests, between the curve drawn from the kept samples (steps: each counter holds its
latest sample's value) and the full curve of every observation, compared at every one.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, text

from batchwatch.models import Counters, JobOrigin, JobStatus, RemoteJob
from batchwatch.store import Store, safe_url
from batchwatch.store.rows import _PROGRESS_COLUMNS
from batchwatch.store.schema import progress
from batchwatch.transitions import plan
from tests.benchmarks.common import Context, Row, say
from tests.helpers import pg_schema

INTERVAL = timedelta(seconds=60)
CYCLES = 1_440  # a day
MAX_SAMPLES = 300
MAX_GROWTH_MB = 100.0
MAX_ERROR_PERCENT = 1.0
#: PostgreSQL's autovacuum defaults: a table is vacuumed once its dead rows exceed
#: ``autovacuum_vacuum_threshold`` + ``autovacuum_vacuum_scale_factor`` x its live rows,
#: looked at every ``autovacuum_naptime`` (1 min: every cycle). See ``_autovacuum``.
VACUUM_THRESHOLD = 50
VACUUM_SCALE_FACTOR = 0.2
START = datetime(2026, 12, 1, tzinfo=UTC)

Observation = tuple[JobStatus, Counters]


def _curve(job: int) -> Iterator[Observation]:
    """Job ``job``'s status and counters at each cycle of the day (deterministic)."""
    rng = random.Random(job)
    kind = job % 4
    total = rng.randrange(1_000, 200_000)
    queued = rng.randrange(0, 90) if kind == 3 else 0
    rate = total / rng.randrange(300, 900) if kind == 3 else total / rng.randrange(1_500, 6_000)
    fail_share = rng.choice((0.0, 0.01, 0.05))
    done = failed = 0.0
    burst = stall = 0
    status = JobStatus.QUEUED if queued else JobStatus.RUNNING
    for cycle in range(CYCLES):
        if status is JobStatus.QUEUED and cycle >= queued:
            status = JobStatus.RUNNING
        step = 0.0
        if status is JobStatus.RUNNING:
            if kind == 1:  # bursty: idle, then a fast run of a few minutes to an hour
                burst = burst - 1 if burst else (rng.randrange(3, 60) if rng.random() < 0.01 else 0)
                step = rate * 8 if burst else 0.0
            elif kind == 2:  # stalled for hours now and then
                stall = (
                    stall - 1 if stall else (rng.randrange(60, 300) if rng.random() < 0.004 else 0)
                )
                step = 0.0 if stall else rate * rng.uniform(0.5, 1.5)
            else:
                step = rate * rng.uniform(0.8, 1.2)
        step = min(step, total - done)
        streak = 0.5 if rng.random() < 0.02 else fail_share  # a failure streak, one cycle long
        done, failed = done + step, failed + step * streak
        if status is JobStatus.RUNNING and done >= total:
            status = JobStatus.FAILED if failed > total / 10 else JobStatus.SUCCESS
        yield status, Counters(total, int(done), int(done) - int(failed), int(failed))


def _job(job: int, status: JobStatus, counters: Counters) -> RemoteJob:
    return RemoteJob(
        f"job-{job:05d}", status, status.value, "/v1/chat/completions", ("file-1",),
        "mistral-small-latest", None, {"team": "search"}, None, None, (),
        1_795_000_000, None, None, counters,
    )  # fmt: skip


def _size_mb(url: str) -> float:
    """The database's size: the SQLite file (the store closed, so its WAL is checkpointed
    into it), or PostgreSQL's tables and their indexes in the current schema."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        wal = path.with_name(path.name + "-wal")
        return (path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)) / 1e6
    store = Store(url)
    query = text(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
    )
    try:
        with store.reading() as conn:
            return int(conn.execute(query).scalar_one()) / 1e6
    finally:
        store.close()


def _simulate(store: Store, jobs: int) -> None:
    curves = [_curve(j) for j in range(jobs)]
    last: list[Observation | None] = [None] * jobs
    live = list(range(jobs))
    for cycle in range(CYCLES):
        now = START + cycle * INTERVAL
        observed = []
        still = []
        for j in live:
            seen = next(curves[j])
            if seen != last[j]:
                observed.append(_job(j, *seen))
                last[j] = seen
            if not seen[0].is_terminal:
                still.append(j)
        live = still
        with store.write() as writer:
            before = writer.load({job.id for job in observed})
            writer.apply(plan(before, observed, now), now, JobOrigin.DISCOVERED)
        if not store.is_sqlite:
            _autovacuum(store)


def _autovacuum(store: Store) -> None:
    """PostgreSQL: what autovacuum, with its default settings, does in real time: it looks
    every minute (every cycle here: this day passes in minutes) and vacuums each table whose
    dead rows passed its threshold, so rewritten rows' space becomes reusable. (The test
    server runs with autovacuum off, and a day of real time is not what a benchmark has.)"""
    due = text(
        "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema()"
        " AND n_dead_tup > :threshold + :factor * n_live_tup"
    )
    with store.engine.connect() as conn:
        auto = conn.execution_options(isolation_level="AUTOCOMMIT")
        tables = auto.execute(
            due, {"threshold": VACUUM_THRESHOLD, "factor": VACUUM_SCALE_FACTOR}
        ).scalars()
        for table in list(tables):
            auto.exec_driver_sql(f'VACUUM "{table}"')


def _kept(store: Store) -> dict[str, list[tuple[datetime, Counters]]]:
    query = select(*_PROGRESS_COLUMNS).order_by(progress.c.job_id, progress.c.seq)
    kept: dict[str, list[tuple[datetime, Counters]]] = {}
    with store.reading() as conn:
        for job_id, at, *counts in conn.execute(query):
            kept.setdefault(job_id, []).append((at, Counters(*counts)))
    return kept


def _worst_error(kept: dict[str, list[tuple[datetime, Counters]]], jobs: int) -> float:
    """The largest gap, in % of total requests, between the kept curve (steps) and every
    observation, over every job and counter."""
    worst = 0.0
    for j in range(jobs):
        samples = kept[f"job-{j:05d}"]
        n = 0
        for cycle, (status, full) in enumerate(_curve(j)):
            at = START + cycle * INTERVAL
            while n + 1 < len(samples) and samples[n + 1][0] <= at:
                n += 1
            drawn = samples[n][1]
            gap = max(
                abs(drawn.completed - full.completed),
                abs(drawn.succeeded - full.succeeded),
                abs(drawn.failed - full.failed),
            )
            worst = max(worst, 100 * gap / full.total)
            if status.is_terminal:
                break
    return worst


def measure(ctx: Context, url: str, label: str) -> list[Row]:
    jobs = ctx.pick(10_000, 1_000)
    store = Store(url)
    store.migrate()
    store.close()
    empty = _size_mb(url)
    store = Store(url)
    try:
        started = time.monotonic()
        _simulate(store, jobs)
        seconds = time.monotonic() - started
        kept = _kept(store)
    finally:
        store.close()
    growth = _size_mb(url) - empty
    counts = [len(v) for v in kept.values()]
    error = _worst_error(kept, jobs)
    say(
        f"  {label}: {jobs:,} jobs x {CYCLES:,} cycles in {seconds:.0f} s; "
        f"{sum(counts):,} samples kept of {CYCLES * jobs:,} observations (per job max"
        f" {max(counts)}); database growth {growth:.1f} MB; worst curve error {error:.3f} %"
    )
    name = f"8. progress, {jobs:,} jobs over a day, {label}"
    return [
        Row(
            f"{name}: samples per job",
            f"max {max(counts)}, mean {sum(counts) / len(counts):.1f}",
            f"<= {MAX_SAMPLES}",
            max(counts) <= MAX_SAMPLES,
        ),
        Row(
            f"{name}: database growth",
            f"{growth:.1f} MB",
            f"<= {MAX_GROWTH_MB:g} MB",
            growth <= MAX_GROWTH_MB,
        ),
        Row(
            f"{name}: worst curve error",
            f"{error:.3f} % of total requests",
            f"<= {MAX_ERROR_PERCENT:g} %",
            error <= MAX_ERROR_PERCENT,
        ),
    ]


def figure(ctx: Context) -> list[Row]:
    say(f"Figure 8 - progress history over a simulated day ({CYCLES:,} cycles, 60 s apart)")
    rows = measure(ctx, f"sqlite:///{Path(ctx.workdir) / 'progress.db'}", "SQLite file")
    base = os.environ.get("BATCHWATCH_TEST_DATABASE_URL")
    if base:
        with pg_schema(base, "bw_bench") as url:
            say(f"  PostgreSQL: {safe_url(base)} (throwaway schema)")
            rows += measure(ctx, url, "PostgreSQL")
    else:
        say("  PostgreSQL: skipped, BATCHWATCH_TEST_DATABASE_URL is not set")
        rows.append(Row("8. progress, PostgreSQL", "skipped: BATCHWATCH_TEST_DATABASE_URL unset"))
    say()
    return rows
