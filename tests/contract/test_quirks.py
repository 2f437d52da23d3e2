"""What one provider does that the others do not, followed through batchwatch: OpenAI's
finalizing step, expired batches and batches with no success; Anthropic's 404 just after a
create. Real simulators on loopback, a real SQLite file."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchwatch.actions import Actions
from batchwatch.models import JobStatus
from batchwatch.observation import fetch_departed
from batchwatch.poller import PollOptions, poll_once
from batchwatch.store import Store
from tests.contract.test_providers import poll_until_ended
from tests.contract.upstreams import Upstream, fetch_results, upstream


@pytest.fixture
def openai(tmp_path: Path) -> Iterator[Upstream]:
    with upstream("openai", tmp_path) as running:
        yield running


@pytest.fixture
def anthropic(tmp_path: Path) -> Iterator[Upstream]:
    with upstream("anthropic", tmp_path) as running:
        yield running


def test_openai_finalizing_is_a_transition_within_running(openai: Upstream, db: Store) -> None:
    job = Actions([openai.client], db).create(
        openai.create_request(4, run_seconds=4), "k-final", "t", "openai"
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        poll_once(openai.client, db, PollOptions())
        current = db.get_job(job.id)
        if current is not None and current.status.is_terminal:
            break
        time.sleep(0.05)
    steps = [(t.to_provider_status, t.to_status) for t in db.transitions(job.id)]
    assert ("finalizing", JobStatus.RUNNING) in steps
    i = steps.index(("finalizing", JobStatus.RUNNING))
    assert steps[i - 1] == ("in_progress", JobStatus.RUNNING)
    assert steps[-1] == ("completed", JobStatus.SUCCESS)


def test_an_expired_openai_batch_keeps_its_partial_results_and_unrun_requests_apart(
    openai: Upstream, db: Store, tmp_path: Path
) -> None:
    request = openai.create_request(10, failure_rate=0.2, sim_outcome="expired")
    job = Actions([openai.client], db).create(request, "k-expired", "t", "openai")
    poll_until_ended(openai, db, [job.id])
    ended = db.get_job(job.id)
    assert ended is not None and ended.status is JobStatus.TIMEOUT_EXCEEDED
    assert ended.remote.raw_status == "expired"
    counts = fetch_results(openai, db, job.id, tmp_path).counts
    assert counts is not None
    # The ledger agrees with OpenAI: the requests never run are not failures.
    assert counts.failed == ended.remote.counters.failed
    assert counts.succeeded == ended.remote.counters.succeeded > 0
    assert counts.not_run == 10 - ended.remote.counters.completed > 0


def test_an_openai_batch_with_no_success_has_a_ledger_of_failures(
    openai: Upstream, db: Store, tmp_path: Path
) -> None:
    job = Actions([openai.client], db).create(
        openai.create_request(6, failure_rate=1.0), "k-none", "t", "openai"
    )
    poll_until_ended(openai, db, [job.id])
    ended = db.get_job(job.id)
    assert ended is not None and ended.remote.output_file is None  # OpenAI sends none
    assert ended.remote.error_file is not None
    counts = fetch_results(openai, db, job.id, tmp_path).counts
    assert counts is not None and (counts.failed, counts.succeeded) == (6, 0)


def test_an_anthropic_batch_answering_404_just_after_its_create_is_not_deleted(
    anthropic: Upstream, db: Store
) -> None:
    request = anthropic.create_request(2, sim_hidden_gets="3")
    job = Actions([anthropic.client], db).create(request, "k-hidden", "t", "anthropic")
    fetched_jobs, deleted, failures = fetch_departed(anthropic.client, db, [job.id])
    assert (fetched_jobs, deleted, failures) == ([], [], [])
    poll_until_ended(anthropic, db, [job.id])
    final = db.get_job(job.id)
    assert final is not None and final.deleted_upstream_at is None
    assert final.status is JobStatus.SUCCESS
