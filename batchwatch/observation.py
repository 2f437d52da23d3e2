"""What one poll cycle read upstream, before anything is written, and the ``get`` of each
stored-active job the cycle's lists did not return: the part every provider's cycle shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from batchwatch.errors import ApiError
from batchwatch.models import RemoteJob
from batchwatch.providers.base import ProviderClient
from batchwatch.store import Store


@dataclass(frozen=True, slots=True)
class Observed:
    """What one cycle read upstream, before anything is written."""

    observed: list[RemoteJob]
    listed: int
    discovered: int
    departed: int
    deleted: list[str]
    failures: list[str]
    #: Discovery read every job it had to: the watermark may move up to this cycle's start.
    #: Not after a failed or malformed discovery page: the jobs it hid may be known nowhere
    #: else, so the next cycle must ask for them again.
    discovery_complete: bool


def fetch_departed(
    client: ProviderClient, store: Store, job_ids: list[str]
) -> tuple[list[RemoteJob], list[str], list[str]]:
    """One ``get`` for each of ``job_ids``: (the jobs read, the ones gone upstream, the
    failures). A 404 is a deletion, except within the provider's ``not_found_grace`` of the
    job's first sighting (an Anthropic batch answers 404 for a moment after its create)."""
    fetched: list[RemoteJob] = []
    deleted: list[str] = []
    failures: list[str] = []
    for job_id in job_ids:
        try:
            fetched.append(client.get_job(job_id))
        except ApiError as exc:
            if exc.status_code == 404 and not _just_created(client, store, job_id):
                deleted.append(job_id)  # gone upstream: keep its history, stop polling it
            elif exc.status_code != 404:
                failures.append(f"{job_id}: {exc.message}")
    return fetched, deleted, failures


def _just_created(client: ProviderClient, store: Store, job_id: str) -> bool:
    if not client.not_found_grace:
        return False
    stored = store.get_job(job_id)
    return stored is not None and datetime.now(UTC) - stored.first_seen_at < client.not_found_grace
