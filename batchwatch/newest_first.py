"""A poll cycle's reads where the list cannot filter by status (OpenAI, Anthropic): every
batch, newest first, page by page, until the first page whose every batch is stored as
ended with the very status listed; then one ``get`` for each stored-active job the pages
did not reach.

Requests per cycle: the pages down to the newest page of ended, known jobs (1 when
nothing new happened above it: ``ceil(A / page) + 1`` when the A active jobs are the
newest, as they usually are), plus one ``get`` per active job older than that page. A first
cycle (nothing stored) reads every page: that is the discovery of the jobs created before
batchwatch ran. Neither API tells whose key created a batch: ``discover = "mine"`` reads
like ``"all"``; ``"none"`` keeps only the jobs already tracked.
"""

from __future__ import annotations

from collections.abc import Mapping

from batchwatch.models import JobPage, JobStatus, RemoteJob
from batchwatch.observation import Observed, fetch_departed
from batchwatch.providers.base import NewestFirstClient
from batchwatch.store import Store
from batchwatch.transitions import departed


def observe_newest_first(client: NewestFirstClient, store: Store, discover: bool) -> Observed:
    stored_active = store.active_job_ids(client.provider)
    seen: dict[str, RemoteJob] = {}
    listed = discovered = malformed = 0
    cursor: str | None = None
    while True:
        # The provider's list, newest first (OpenAI: GET /v1/batches; Anthropic: GET
        # /v1/messages/batches), as many a page as it serves.
        page, cursor = client.list_newest(cursor, client.max_page_size)
        stored = store.stored_statuses([job.id for job in page.jobs])
        listed += len(page.jobs)
        malformed += page.malformed
        for job in page.jobs:
            if job.id not in seen and (discover or job.id in stored_active):
                seen[job.id] = job
                discovered += job.id not in stored
        if cursor is None or _settled(page, stored):
            break
    observed = list(seen.values())
    gone = departed(stored_active, seen.keys())
    fetched, deleted, failures = fetch_departed(client, store, gone)
    return Observed(
        observed=observed + fetched,
        listed=listed,
        discovered=discovered,
        departed=len(gone),
        deleted=deleted,
        failures=failures,
        discovery_complete=malformed == 0,
    )


def _settled(page: JobPage, stored: Mapping[str, JobStatus]) -> bool:
    """Whether nothing older than ``page`` can be news: every job on it is stored, ended,
    in the status listed (terminal statuses are final). A malformed item may hide
    anything, and an empty page proves nothing."""
    if page.malformed or not page.jobs:
        return False
    return all(job.status.is_terminal and stored.get(job.id) is job.status for job in page.jobs)
