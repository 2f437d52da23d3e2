"""One poll cycle as a plain function: fetch → diff → persist → log.

It knows nothing of scheduling or signals; the scheduler, the tests and ``batchwatch poll
--once`` all call ``poll_once`` directly.

Requests per cycle: ceil(A / page_size) list pages for the A active jobs; discovery's
pages of terminal jobs created since the previous cycle (less an overlap for skew), newest
first, read only until every job that ended since is found: one page when nothing new
ended, whatever ended within the overlap before; and one ``get`` for each stored-active
job that neither list returned (it ended, or moved while pages were read).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from batchwatch.errors import ApiError
from batchwatch.logs import get_logger
from batchwatch.models import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    JobOrigin,
    JobPage,
    JobStatus,
    ListFilter,
    RemoteJob,
    Transition,
)
from batchwatch.newest_first import observe_newest_first
from batchwatch.observation import Observed, fetch_departed
from batchwatch.providers.base import (
    NewestFirstListing,
    ProviderClient,
    StatusListing,
    StatusListingClient,
)
from batchwatch.store import JobQuery, Store, Writer
from batchwatch.transitions import Skipped, departed, latest_by_id, plan

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
    client: ProviderClient, store: Store, options: PollOptions, clock: Clock = utc_now
) -> CycleReport:
    started = time.monotonic()
    cycle_start = clock()
    seen = _observe(client, store, options)
    observed_at = clock()
    with store.write() as writer:
        written = _write(writer, seen.observed, observed_at)
        for job_id in seen.deleted:
            writer.mark_deleted(job_id, observed_at)
        writer.retain_cached((job.id for job in seen.observed), client.provider)
        if seen.discovery_complete and isinstance(client, StatusListing):
            writer.set_state(WATERMARK, str(int(cycle_start.timestamp())))
    _log_changes(written, seen.deleted)

    report = CycleReport(
        listed=seen.listed,
        discovered=seen.discovered,
        departed=seen.departed,
        transitions=len(written.transitions),
        progress=written.progress,
        skipped=len(written.skipped),
        deleted=len(seen.deleted),
        seconds=round(time.monotonic() - started, 4),
    )
    log.info("poll_finished", provider=client.provider, **asdict(report))
    if seen.failures:
        raise PartialCycle(
            f"{len(seen.failures)} read(s) failed, the rest recorded: {seen.failures[0]}"
        )
    return report


#: A cycle's observations are planned and written this many jobs at a time, all in the
#: cycle's one transaction: the stored rows decoded and the changes planned at once stay
#: this few however many jobs are active. Measured (`python -m tests.benchmarks.run --only
#: memory`, 10,000 active jobs): the daemon's RSS peak 88.0 MB so, 95.9 MB in one piece.
WRITE_SLICE = 1_000


@dataclass(slots=True)
class _Written:
    """What a cycle's write recorded, as far as it is logged and reported."""

    transitions: list[Transition] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    progress: int = 0


def _write(writer: Writer, observed: list[RemoteJob], now: datetime) -> _Written:
    """Record ``observed`` (load the stored rows, plan, apply), a slice at a time."""
    written = _Written()
    jobs = latest_by_id(observed)  # (one observation a job: a job is in one slice)
    for start in range(0, len(jobs), WRITE_SLICE):
        part = jobs[start : start + WRITE_SLICE]
        changes = plan(writer.load({job.id for job in part}), part, now)
        writer.apply(changes, now, JobOrigin.DISCOVERED)
        written.transitions += changes.transitions
        written.skipped += changes.skipped
        written.progress += len(changes.progress)
    return written


def _observe(client: ProviderClient, store: Store, options: PollOptions) -> Observed:
    """The cycle's reads, as the provider's list allows them."""
    if isinstance(client, StatusListing):
        return _observe_by_status(client, store, options)
    if isinstance(client, NewestFirstListing):
        return observe_newest_first(client, store, options.discover != "none")
    raise TypeError(f"{type(client).__name__} offers no way of listing jobs")


def _observe_by_status(client: StatusListingClient, store: Store, options: PollOptions) -> Observed:
    """Mistral's reads: the active list, discovery, then a get for each stored-active job
    that neither returned."""
    stored_active = store.active_job_ids(client.provider)
    # Mistral: one status-filtered list (status repeated) instead of a get per job.
    active = client.list_all(
        _sorted_filter(ACTIVE_STATUSES, created_by_me=options.discover == "mine"),
        options.page_size,
        options.concurrency,
    )
    # Discovery failing costs only what it would have found: the active list is recorded
    # all the same, and the watermark stays put so the next cycle asks again.
    found, failures = JobPage((), 0), []
    if options.discover != "none":
        try:
            found = _discover(client, store, options)
        except ApiError as exc:
            failures.append(f"discovery: {exc.message}")
    observed = list(active.jobs) + list(found.jobs)
    if options.discover == "none":
        observed = [job for job in observed if job.id in stored_active]
    if active.malformed or found.malformed:
        log.warning(
            "jobs_malformed",
            count=active.malformed + found.malformed,
            hint="left out of this cycle; tracked jobs among them are read one by one",
        )
    gone = departed(stored_active, {job.id for job in observed})
    fetched, deleted, missed = fetch_departed(client, store, gone)
    return Observed(
        observed=observed + fetched,
        listed=len(active.jobs),
        discovered=len(found.jobs),
        departed=len(gone),
        deleted=deleted,
        failures=failures + missed,
        discovery_complete=options.discover != "none" and not failures and not found.malformed,
    )


def _discover(client: StatusListingClient, store: Store, options: PollOptions) -> JobPage:
    """Jobs that ended without ever being seen active: created since the last cycle (or,
    on the very first cycle, ever), already in a terminal status."""
    mark = store.get_state(WATERMARK)
    mine = options.discover == "mine"
    if mark is None:
        # Mistral: every terminal job ever created, the pages read concurrently.
        everything = _sorted_filter(TERMINAL_STATUSES, created_by_me=mine)
        return client.list_all(everything, options.page_size, options.concurrency)
    since = datetime.fromtimestamp(int(mark), UTC) - options.discovery_overlap
    flt = _sorted_filter(TERMINAL_STATUSES, created_by_me=mine, created_after=since)
    # Mistral keeps jobs created at or after the whole second it is sent (wire format).
    stored_since = math.floor(since.timestamp())
    query = JobQuery(
        statuses=flt.statuses, created_after=stored_since - 1, page_size=0, provider="mistral"
    )
    return _read_until_settled(client, store, flt, options, store.list_jobs(query)[1])


def _read_until_settled(
    client: StatusListingClient, store: Store, flt: ListFilter, options: PollOptions, stored: int
) -> JobPage:
    """The terminal jobs matching ``flt``, newest first, page by page, stopping after the
    first page whose every job is already stored with the very status listed, once the
    pages read hold as many news as Mistral's ``total`` says exist.

    Listed newest *created* first, a job that ends late can sit below a page of newer jobs
    stored already (a job created just after the previous active list was read, that
    outlived the short jobs created after it). So the first known page alone proves
    nothing: the count does. ``stored`` is how many jobs the store holds in a terminal
    status in the same window; every one of them is listed (terminal is final), so
    ``total - stored`` of the listed ones are news, and discovery reads on until it has seen
    that many. When ``stored`` exceeds ``total`` (a tracked job of someone else's under
    ``discover = "mine"``, a job deleted upstream) the count proves nothing, and every page
    is read. A job that ends while the pages are read can push an older one down a page or
    stand in for it in the count; the one it hid is still news next cycle, and is read then.

    After the first page the next ones are read as many at a time as were read so far (up
    to ``concurrency``), so a cycle with one job ended reads 2 pages, and a burst is read
    almost as fast as ``list_all`` would."""
    # Mistral: jobs_api_routes_batch_get_batch_jobs, newest first (order_by=-created).
    first = client.list_page(flt, 0, options.page_size)
    pages = max(1, math.ceil(first.total / options.page_size))
    tally = _Tally(store, first.total - stored if stored <= first.total else None)
    done, read = tally.take(first), 1
    with ThreadPoolExecutor(max_workers=options.concurrency) as pool:
        while not done and read < pages:
            wave = range(read, min(pages, 2 * read, read + options.concurrency))
            for page in pool.map(lambda n: client.list_page(flt, n, options.page_size), wave):
                done = tally.take(page) or done
            read = wave.stop
    return JobPage(tuple(tally.seen.values()), first.total, tally.malformed)


@dataclass(slots=True)
class _Tally:
    """Discovery's pages so far, and whether it may stop."""

    store: Store
    #: Listed jobs the store does not hold in a terminal status; None when unknown.
    news_expected: int | None
    seen: dict[str, RemoteJob] = field(default_factory=dict)
    news_seen: int = 0
    malformed: int = 0

    def take(self, page: JobPage) -> bool:
        """Add one page; whether discovery may stop after it."""
        stored = self.store.stored_statuses([job.id for job in page.jobs])
        # A malformed item may hide anything: its page is never the last one read.
        known_page = page.malformed == 0
        for job in page.jobs:
            status = stored.get(job.id)
            # Stored RUNNING and now listed SUCCESS is news, as is a job never stored.
            known_page = known_page and status is job.status
            if job.id not in self.seen:  # a job seen on two pages: the list shifted
                self.seen[job.id] = job
                self.news_seen += status is None or not status.is_terminal
        self.malformed += page.malformed
        expected = self.news_expected
        return known_page and expected is not None and self.news_seen >= expected


def _log_changes(changes: _Written, deleted: list[str]) -> None:
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


def poll_all(
    clients: Sequence[ProviderClient], store: Store, options: PollOptions, clock: Clock = utc_now
) -> CycleReport:
    """One cycle of every provider, side by side (each reads and writes its own jobs); one
    report adding theirs up. A provider that fails does not stop the others: the cycle
    raises after all of them ran, naming it."""
    if len(clients) == 1:
        return poll_once(clients[0], store, options, clock)
    started = time.monotonic()
    with ThreadPoolExecutor(len(clients), thread_name_prefix="poll") as pool:
        futures = [pool.submit(poll_once, c, store, options, clock) for c in clients]
    reports: list[CycleReport] = []
    failed: list[str] = []
    for client, future in zip(clients, futures, strict=True):
        try:
            reports.append(future.result())
        except (ApiError, PartialCycle) as exc:
            failed.append(f"{client.provider}: {exc}")
    sums = {name: sum(getattr(r, name) for r in reports) for name in _COUNTED}
    total = CycleReport(**sums, seconds=round(time.monotonic() - started, 4))
    if failed:
        raise PartialCycle("; ".join(failed))
    return total


_COUNTED = ("listed", "discovered", "departed", "transitions", "progress", "skipped", "deleted")
