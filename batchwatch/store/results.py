"""Results in the database: which ended jobs are to be fetched, how each attempt ended, the
files on disk and the ledger of every request.

A job is queued for fetching by reading the transition feed after ``results_cursor``: its
terminal transition and the cursor's move are one transaction, so a restart neither misses
nor repeats a job. Attempts take a job ``pending`` → ``downloading`` → ``ready`` (or back to
``pending`` with a reason and a time to try again, or ``unavailable``). The ledger of a big
job is written in chunks, each its own short transaction, so a poll cycle never waits long
for the write lock; a chunked ledger becomes visible as a whole when the state turns
``ready``, and an attempt starts by removing what an interrupted one left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    delete,
    func,
    insert,
    select,
    update,
)

from batchwatch.events import EventType, new_event
from batchwatch.models import (
    TERMINAL_STATUSES,
    ActionRecord,
    JobResults,
    RequestCounts,
    ResultFile,
    ResultsState,
    TokenUsage,
)
from batchwatch.store import Store
from batchwatch.store.bulk import Bulk
from batchwatch.store.codecs import decode_time
from batchwatch.store.intents import record_action
from batchwatch.store.schema import jobs, ledger, result_files, results, sync_state, transitions

CURSOR = "results_cursor"
_TERMINAL = sorted(s.value for s in TERMINAL_STATUSES)
#: The ledger columns a row of ``insert_ledger`` gives, in order (``n`` is numbered here).
LEDGER_COLUMNS = (
    "custom_id",
    "outcome",
    "status_code",
    "error_message",
    "error_code",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "raw",
    "source",
    "line",
    "duplicate",
)
_COUNTS = ("total", "succeeded", "failed", "not_run")
_USAGE = ("prompt_tokens", "completion_tokens", "total_tokens")


def queue_ended(store: Store, now: datetime, limit: int = 1000) -> int:
    """Queue the jobs whose terminal transition the feed holds after the cursor (at most
    ``limit`` transitions read); returns how many were queued. A scan with nothing new in
    the feed only reads (every few seconds: it must not take the write lock for nothing)."""
    cursor = select(sync_state.c.value).where(sync_state.c.name == CURSOR)
    with store.reading() as conn:
        top = conn.execute(select(func.max(transitions.c.id))).scalar_one_or_none()
        seen = conn.execute(cursor).scalar_one_or_none()
    if top is None or int(top) <= int(seen or 0):
        return 0
    with store.write() as w:
        rows = w.conn.execute(select(sync_state.c.value).where(sync_state.c.name == CURSOR))
        found = rows.scalar_one_or_none()
        after = int(found) if found is not None else 0
        ended = w.conn.execute(
            select(transitions.c.id, transitions.c.job_id)
            .where(transitions.c.id > after, transitions.c.to_status.in_(_TERMINAL))
            .order_by(transitions.c.id)
            .limit(limit)
        ).all()
        # The cursor moves past every transition read, ended or not: up to the last one
        # examined, or the feed's end when fewer than ``limit`` ended.
        if len(ended) < limit:
            top = w.conn.execute(select(func.max(transitions.c.id))).scalar_one_or_none()
            last = max(after, int(top or 0))
        else:
            last = int(ended[-1][0])
        job_ids = sorted({job_id for _, job_id in ended})
        queued = select(results.c.job_id).where(results.c.job_id.in_(job_ids))
        known = {row[0] for row in w.conn.execute(queued)} if job_ids else set()
        new = [
            {
                "job_id": job_id,
                "state": ResultsState.PENDING.value,
                "reason": None,
                "attempts": 0,
                "next_attempt_at": now,
                "updated_at": now,
            }
            for job_id in job_ids
            if job_id not in known
        ]
        if new:
            w.conn.execute(insert(results), new)
        w.set_state(CURSOR, str(last))
    return len(new)


def queued_soon(store: Store, job_id: str) -> bool:
    """Whether the job's terminal transition is past the cursor: it will be queued at the
    next scan (its results are pending, not missing)."""
    query = select(func.max(transitions.c.id)).where(
        transitions.c.job_id == job_id, transitions.c.to_status.in_(_TERMINAL)
    )
    cursor = select(sync_state.c.value).where(sync_state.c.name == CURSOR)
    with store.reading() as conn:
        ended = conn.execute(query).scalar_one_or_none()
        after = conn.execute(cursor).scalar_one_or_none()
    return ended is not None and ended > int(after or 0)


def due(store: Store, now: datetime, limit: int) -> list[str]:
    """The pending jobs whose next attempt is due, the longest waiting first."""
    query = (
        select(results.c.job_id)
        .where(results.c.state == ResultsState.PENDING.value, results.c.next_attempt_at <= now)
        .order_by(results.c.next_attempt_at, results.c.job_id)
        .limit(limit)
    )
    return [row[0] for row in store._rows(query)]


def interrupted(store: Store, now: datetime) -> int:
    """At start-up: attempts a stopped daemon left ``downloading`` are pending again."""
    with store.write() as w:
        done = w.conn.execute(
            update(results)
            .where(results.c.state == ResultsState.DOWNLOADING.value)
            .values(state=ResultsState.PENDING.value, next_attempt_at=now, updated_at=now)
        )
        return int(done.rowcount)


def start_attempt(store: Store, job_id: str, now: datetime) -> bool:
    """``pending`` → ``downloading``, with what an earlier attempt left in the database
    removed; False when the job is not pending (another attempt has it)."""
    with store.write() as w:
        claimed = w.conn.execute(
            update(results)
            .where(results.c.job_id == job_id, results.c.state == ResultsState.PENDING.value)
            .values(
                state=ResultsState.DOWNLOADING.value,
                attempts=results.c.attempts + 1,
                updated_at=now,
            )
        )
        if claimed.rowcount != 1:
            return False
        w.conn.execute(delete(ledger).where(ledger.c.job_id == job_id))
        w.conn.execute(delete(result_files).where(result_files.c.job_id == job_id))
    return True


def insert_ledger(store: Store, job_id: str, first: int, rows: Sequence[Sequence[Any]]) -> None:
    """Ledger rows (values in ``LEDGER_COLUMNS`` order) numbered from ``first``: one short
    transaction."""
    columns = (ledger.c.job_id, ledger.c.n, *(ledger.c[name] for name in LEDGER_COLUMNS))
    with store.write() as w:
        Bulk(w.conn).insert(
            ledger,
            columns,
            ((job_id, first + k, *row) for k, row in enumerate(rows)),
        )


def finish_ready(
    store: Store,
    job_id: str,
    *,
    files: Sequence[ResultFile],
    counts: RequestCounts,
    usage: TokenUsage,
    rows: dict[str, int],
    now: datetime,
) -> None:
    """The attempt succeeded: its files, counts and token totals, the ledger's rows by
    outcome, and the state ``ready``."""
    with store.write() as w:
        if files:
            w.conn.execute(
                insert(result_files),
                [
                    {
                        "job_id": job_id,
                        "kind": f.kind,
                        "n": f.n,
                        "file_id": f.file_id,
                        "bytes": f.bytes,
                        "sha256": f.sha256,
                        "path": f.path,
                        "downloaded_at": now,
                    }
                    for f in files
                ],
            )
        w.conn.execute(
            update(results)
            .where(results.c.job_id == job_id)
            .values(
                state=ResultsState.READY.value,
                reason=None,
                ledger_rows=rows,
                updated_at=now,
                **{name: getattr(counts, name) for name in _COUNTS},
                **{name: getattr(usage, name) for name in _USAGE},
            )
        )
        data = {
            "requests": asdict(counts),
            "usage": asdict(usage),
            "files": [{"kind": f.kind, "bytes": f.bytes, "sha256": f.sha256} for f in files],
        }
        w.record_events([new_event(EventType.RESULTS_READY, job_id, now, data)])


def finish_failed(
    store: Store, job_id: str, reason: str, now: datetime, *, retry_at: datetime | None
) -> None:
    """The attempt failed: ``pending`` again until ``retry_at``, or (None) ``unavailable``."""
    state = ResultsState.PENDING if retry_at is not None else ResultsState.UNAVAILABLE
    values: dict[str, Any] = {"state": state.value, "reason": reason, "updated_at": now}
    if retry_at is not None:
        values["next_attempt_at"] = retry_at
    with store.write() as w:
        w.conn.execute(update(results).where(results.c.job_id == job_id).values(values))
        if state is ResultsState.UNAVAILABLE:
            w.conn.execute(delete(ledger).where(ledger.c.job_id == job_id))


def job_results(store: Store, job_id: str) -> JobResults | None:
    """Where fetching ``job_id``'s results stands; None when it was never queued."""
    with store.reading() as conn:
        row = conn.execute(select(results).where(results.c.job_id == job_id)).mappings().first()
        if row is None:
            return None
        files = conn.execute(
            select(result_files)
            .where(result_files.c.job_id == job_id)
            .order_by(result_files.c.kind, result_files.c.n)
        ).mappings()
        found = tuple(
            ResultFile(f["kind"], f["n"], f["file_id"], f["bytes"], f["sha256"], f["path"])
            for f in files
        )
    ready = row["state"] == ResultsState.READY.value
    next_at, updated = decode_time(row["next_attempt_at"]), decode_time(row["updated_at"])
    assert next_at is not None
    assert updated is not None
    return JobResults(
        job_id=job_id,
        state=ResultsState(row["state"]),
        reason=row["reason"],
        attempts=row["attempts"],
        next_attempt_at=next_at,
        updated_at=updated,
        files=found,
        counts=RequestCounts(*(int(row[n] or 0) for n in _COUNTS)) if ready else None,
        usage=TokenUsage(*(int(row[n] or 0) for n in _USAGE)) if ready else None,
    )


def usage(
    store: Store, since: datetime | None, metadata_key: str | None
) -> list[tuple[str | None, str | None, int, int, int, int, int]]:
    """Token totals of the jobs whose results are ready, by group and model: rows of
    (group, model, jobs, requests, prompt, completion, total tokens). The group is the
    value of metadata ``metadata_key`` (None: the model itself); ``since`` counts the jobs
    whose results were ready after it."""
    group = jobs.c.job_metadata[metadata_key].as_string() if metadata_key else jobs.c.model
    sums = [func.coalesce(func.sum(results.c[name]), 0) for name in ("total", *_USAGE)]
    query = (
        select(group, jobs.c.model, func.count(), *sums)
        .select_from(results.join(jobs, jobs.c.id == results.c.job_id))
        .where(results.c.state == ResultsState.READY.value)
        .group_by(group, jobs.c.model)
        .order_by(group, jobs.c.model)
    )
    if since is not None:
        query = query.where(results.c.updated_at >= since)
    return [
        (row[0], row[1], int(row[2]), int(row[3]), int(row[4]), int(row[5]), int(row[6]))
        for row in store._rows(query)
    ]


def record_deleted(store: Store, job_id: str, requested_by: str, status: str) -> None:
    """The job was deleted upstream at our request: no longer polled, and who did it."""
    now = datetime.now(UTC)
    with store.write() as w:
        w.mark_deleted(job_id, now)
        record_action(
            w,
            ActionRecord(
                job_id=job_id,
                action="delete",
                requested_by=requested_by,
                requested_at=now,
                status_after=status,
            ),
        )
