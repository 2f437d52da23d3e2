"""The contract every provider meets: one suite, run against the Mistral, OpenAI and
Anthropic simulators on loopback, through batchwatch's own poller, results worker and
actions, with a real SQLite file.

Whatever a provider's JSON, its jobs end up as the same records: a job followed to its
end with both statuses kept, a quiet cycle that costs as few requests as its list allows,
a ledger that agrees with the provider's counts, a create that happens once, a cancel
recorded, a retry of what failed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchwatch import providers
from batchwatch.actions import Actions
from batchwatch.models import JobStatus, Outcome
from batchwatch.poller import PollOptions, poll_once
from batchwatch.results.actions import ResultsActions
from batchwatch.store import Store
from tests.contract.upstreams import PROVIDERS, Upstream, fetch_results, upstream


@pytest.fixture(params=PROVIDERS)
def up(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Upstream]:
    with upstream(request.param, tmp_path) as running:
        yield running


def poll_until_ended(up: Upstream, store: Store, job_ids: list[str], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        poll_once(up.client, store, PollOptions())
        jobs = [store.get_job(j) for j in job_ids]
        if all(j is not None and j.status.is_terminal for j in jobs):
            return
        time.sleep(0.15)
    raise AssertionError(f"not ended after {seconds} s: {[store.get_job(j) for j in job_ids]}")


def test_a_created_job_is_followed_to_its_end_with_both_statuses(up: Upstream, db: Store) -> None:
    job = Actions([up.client], db).create(up.create_request(4), "k-end", "test", up.name)
    assert db.get_job(job.id) is not None  # recorded before the create answered
    poll_until_ended(up, db, [job.id])
    final = db.get_job(job.id)
    assert final is not None and final.status is JobStatus.SUCCESS
    assert final.remote.provider == up.name
    history = db.transitions(job.id)
    entry = providers.provider(up.name)
    for t in history:
        # The provider's own status as sent, and the common one it maps to.
        assert t.to_provider_status is not None and t.to_provider_status in entry.statuses
        mapped = entry.statuses[t.to_provider_status]
        assert mapped is None or mapped is t.to_status
    assert [t.seq for t in history] == list(range(1, len(history) + 1))
    assert history[-1].to_status is JobStatus.SUCCESS


def test_a_job_created_elsewhere_is_discovered(up: Upstream, db: Store) -> None:
    other = Actions([up.client], Store(f"sqlite:///{up.tmp / 'other.db'}"))
    other.store.migrate()
    job = other.create(up.create_request(2), "k-elsewhere", "someone", up.name)
    other.store.close()
    poll_until_ended(up, db, [job.id])
    found = db.get_job(job.id)
    assert found is not None and found.origin.value == "discovered"


def test_a_quiet_cycle_costs_the_fewest_requests_its_list_allows(up: Upstream, db: Store) -> None:
    acting = Actions([up.client], db)
    jobs = [acting.create(up.create_request(2), f"k-quiet-{i}", "t", up.name) for i in range(3)]
    poll_until_ended(up, db, [j.id for j in jobs])
    poll_once(up.client, db, PollOptions())  # the watermark settles
    up.reset_requests()
    poll_once(up.client, db, PollOptions())
    # Mistral: the active list and one discovery page. OpenAI, Anthropic: the newest page,
    # all of it stored as ended, and nothing more.
    assert up.requests_served() == (2 if up.name == "mistral" else 1)


def test_the_ledger_agrees_with_the_providers_counts(
    up: Upstream, db: Store, tmp_path: Path
) -> None:
    acting = Actions([up.client], db)
    job = acting.create(up.create_request(20, failure_rate=0.25), "k-ledger", "t", up.name)
    poll_until_ended(up, db, [job.id])
    results = fetch_results(up, db, job.id, tmp_path)
    ended = db.get_job(job.id)
    assert ended is not None
    assert results.counts is not None and results.usage is not None
    assert results.counts.total == 20
    assert results.counts.succeeded == ended.remote.counters.succeeded
    assert results.counts.failed == ended.remote.counters.failed > 0
    assert results.usage.total_tokens > 0


def test_a_cancel_is_recorded_then_followed_to_cancelled(up: Upstream, db: Store) -> None:
    acting = Actions([up.client], db)
    job = acting.create(up.create_request(5, run_seconds=30), "k-cancel", "t", up.name)
    cancelled = acting.cancel(job.id, "test")
    assert cancelled.status in (JobStatus.CANCELLATION_REQUESTED, JobStatus.CANCELLED)
    poll_until_ended(up, db, [job.id])
    final = db.get_job(job.id)
    assert final is not None and final.status is JobStatus.CANCELLED
    sources = [t.source for t in db.transitions(job.id)]
    assert "cancel" in sources


def test_a_retry_resends_exactly_the_failed_requests(
    up: Upstream, db: Store, tmp_path: Path
) -> None:
    acting = Actions([up.client], db)
    parent = acting.create(up.create_request(12, failure_rate=0.25), "k-parent", "t", up.name)
    poll_until_ended(up, db, [parent.id])
    fetch_results(up, db, parent.id, tmp_path)
    failed = db.get_job(parent.id)
    assert failed is not None and failed.remote.counters.failed > 0
    retrying = ResultsActions(acting)
    child = retrying.retry(parent.id, [Outcome.FAILED], None, "test")
    again = retrying.retry(parent.id, [Outcome.FAILED], None, "test")
    assert again.id == child.id != parent.id  # asked twice, one child
    poll_until_ended(up, db, [child.id])
    done = db.get_job(child.id)
    assert done is not None
    assert done.remote.counters.total == failed.remote.counters.failed
