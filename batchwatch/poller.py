"""One poll cycle as a plain function: fetch → diff → persist → log.

It knows nothing of scheduling or signals; the scheduler, the tests and ``batchwatch poll
--once`` all call ``poll_once`` directly.

Requests per cycle: ceil(A / page_size) list pages for the A active jobs, one discovery
page for jobs that were created and finished between two cycles, and one ``get`` for each
stored-active job that neither list returned (it ended, or moved while pages were read).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from batchwatch.errors import ApiError
from batchwatch.logs import get_logger
from batchwatch.models import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    JobPage,
    JobSource,
    JobStatus,
    ListFilter,
    RemoteJob,
)
from batchwatch.providers.mistral.client import MistralClient
from batchwatch.store import Store
from batchwatch.transitions import Changes, departed, plan

log = get_logger("batchwatch.poller")

WATERMARK = "discovered_until"
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class PollOptions:
    discover: str = "all"  # all | mine | none
    page_size: int = 100
    concurrency: int = 4
    # Discovery re-reads jobs created this long before the previous cycle started, so a
    # job whose created_at lags (clock skew, ingestion delay upstream) is not missed.
    discovery_overlap: timedelta = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class CycleReport:
    listed: int
    discovered: int
    departed: int
    transitions: int
    progress: int
    skipped: int
    deleted: int
    seconds: float


class PartialCycle(Exception):
    """The cycle recorded what it could, but the discovery list or some departed jobs
    could not be read."""


def _sorted_filter(
    statuses: frozenset[JobStatus], *, created_by_me: bool, created_after: datetime | None = None
) -> ListFilter:
    return ListFilter(
        statuses=tuple(sorted(statuses)), created_by_me=created_by_me, created_after=created_after
    )


def poll_once(
    client: MistralClient, store: Store, options: PollOptions, clock: Clock = utc_now
) -> CycleReport:
    started = time.monotonic()
    cycle_start = clock()
    stored_active = store.active_job_ids()
    mine = options.discover == "mine"

    # Mistral: one status-filtered list (status repeated) instead of a get per job.
    active = client.list_all(
        _sorted_filter(ACTIVE_STATUSES, created_by_me=mine),
        options.page_size,
        options.concurrency,
    )
    # Discovery failing costs only what it would have found: the active list is recorded
    # all the same, and the watermark stays put so the next cycle asks again.
    found, discovery_error = JobPage((), 0), None
    if options.discover != "none":
        try:
            found = _discover(client, store, options)
        except ApiError as exc:
            discovery_error = f"discovery: {exc.message}"
    listed, discovered = list(active.jobs), list(found.jobs)
    observed = listed + discovered
    if options.discover == "none":
        observed = [job for job in observed if job.id in stored_active]
    if active.malformed or found.malformed:
        log.warning(
            "jobs_malformed",
            count=active.malformed + found.malformed,
            hint="left out of this cycle; tracked jobs among them are read one by one",
        )

    gone = departed(stored_active, {job.id for job in observed})
    fetched, deleted, failures = _fetch_departed(client, gone)
    if discovery_error is not None:
        failures.insert(0, discovery_error)
    observed += fetched
    observed_at = clock()

    with store.write() as writer:
        before = writer.load({job.id for job in observed})
        changes = plan(before, observed, observed_at)
        writer.apply(changes, observed_at, JobSource.DISCOVERED)
        for job_id in deleted:
            writer.mark_deleted(job_id, observed_at)
        # A malformed discovery page must be read again next cycle: the jobs it hid may
        # be known nowhere else.
        if options.discover != "none" and not found.malformed and discovery_error is None:
            writer.set_state(WATERMARK, str(int(cycle_start.timestamp())))
    _log_changes(changes, deleted)

    report = CycleReport(
        listed=len(listed),
        discovered=len(discovered),
        departed=len(gone),
        transitions=len(changes.transitions),
        progress=len(changes.progress),
        skipped=len(changes.skipped),
        deleted=len(deleted),
        seconds=round(time.monotonic() - started, 4),
    )
    log.info("poll_finished", **asdict(report))
    if failures:
        raise PartialCycle(f"{len(failures)} read(s) failed, the rest recorded: {failures[0]}")
    return report


def _discover(client: MistralClient, store: Store, options: PollOptions) -> JobPage:
    """Jobs that ended without ever being seen active: created since the last cycle (or,
    on the very first cycle, ever), already in a terminal status."""
    mark = store.get_state(WATERMARK)
    since = datetime.fromtimestamp(int(mark), UTC) - options.discovery_overlap if mark else None
    flt = _sorted_filter(
        TERMINAL_STATUSES, created_by_me=options.discover == "mine", created_after=since
    )
    return client.list_all(flt, options.page_size, options.concurrency)


def _fetch_departed(
    client: MistralClient, job_ids: list[str]
) -> tuple[list[RemoteJob], list[str], list[str]]:
    fetched: list[RemoteJob] = []
    deleted: list[str] = []
    failures: list[str] = []
    for job_id in job_ids:
        try:
            # Mistral: jobs_api_routes_batch_get_batch_job, for a job that left the list.
            fetched.append(client.get_job(job_id))
        except ApiError as exc:
            if exc.status_code == 404:
                deleted.append(job_id)  # gone upstream: keep its history, stop polling it
            else:
                failures.append(f"{job_id}: {exc.message}")
    return fetched, deleted, failures


def _log_changes(changes: Changes, deleted: list[str]) -> None:
    for t in changes.transitions:
        log.info(
            "job_transitioned",
            job_id=t.job_id,
            from_status=t.from_status.value if t.from_status else None,
            to_status=t.to_status.value,
            observed_at=t.observed_at.isoformat(),
        )
    for s in changes.skipped:
        log.warning(
            "observation_ignored",
            job_id=s.job_id,
            reason=s.reason,
            stored_status=s.stored,
            observed_status=s.observed,
        )
    for job_id in deleted:
        log.warning("job_deleted_upstream", job_id=job_id)
