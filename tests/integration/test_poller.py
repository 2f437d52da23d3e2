"""One poll cycle against the simulator over real HTTP, recording into a real SQLite file."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator

import pytest
import requests

from batchwatch.models import JobStatus
from batchwatch.poller import WATERMARK, PartialCycle, PollOptions, poll_once
from batchwatch.providers.mistral.client import MistralClient, RetryPolicy
from batchwatch.providers.mistral.schemas import CreateBatchJobIn
from batchwatch.simulator.app import JobSpec, RunningSimulator
from batchwatch.simulator.faults import FaultRule
from batchwatch.store import Store
from tests.helpers import SIM_API_KEY

LIST = "GET /v1/batch/jobs"
SPEC = JobSpec(endpoint="/v1/chat/completions", model="mistral-small-latest")


@pytest.fixture
def client(simulator: RunningSimulator) -> Iterator[MistralClient]:
    c = MistralClient(simulator.url, SIM_API_KEY)
    yield c
    c.close()


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    s = Store(sqlite_url)
    s.migrate()
    yield s
    s.close()


def create(client: MistralClient, **directives: str) -> str:
    request = CreateBatchJobIn.model_validate(
        {
            "endpoint": "/v1/chat/completions",
            "model": "mistral-small-latest",
            "requests": tuple({"custom_id": str(n), "body": {"messages": []}} for n in range(10)),
            "metadata": directives or None,
        }
    )
    return client.create_job(request).id


def truth(sim: RunningSimulator, job_id: str) -> list[str]:
    return [entry.status.value for entry in sim.simulation.history(job_id)]


def recorded(store: Store, job_id: str) -> list[str]:
    return [t.to_status.value for t in store.transitions(job_id)]


def requests_made(sim: RunningSimulator) -> dict[str, int]:
    body = requests.get(f"{sim.url}/_sim/stats", timeout=5).json()
    return {k: v for k, v in body["requests"].items() if v}


def reset_stats(sim: RunningSimulator) -> None:
    requests.post(f"{sim.url}/_sim/stats/reset", timeout=5).raise_for_status()


def poll_until_quiet(
    client: MistralClient, store: Store, options: PollOptions, seconds: float = 15
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        poll_once(client, store, options)
        if not store.active_jobs():
            return
        time.sleep(0.05)
    raise AssertionError("jobs still active after the deadline")


def test_every_outcome_recorded_exactly_as_it_happened(
    simulator: RunningSimulator, client: MistralClient, store: Store
) -> None:
    ids = {
        "SUCCESS": create(client),
        "FAILED": create(client, sim_outcome="FAILED"),
        "TIMEOUT_EXCEEDED": create(client, sim_outcome="TIMEOUT_EXCEEDED"),
        "CANCELLED": create(client, sim_run_seconds="20"),
    }
    options = PollOptions()
    # Poll often enough to see every status (a status that comes and goes between two polls
    # is unobservable), and cancel once the job is seen running.
    while recorded(store, ids["CANCELLED"])[-1:] != ["RUNNING"]:
        poll_once(client, store, options)
        time.sleep(0.05)
    client.cancel_job(ids["CANCELLED"])
    poll_until_quiet(client, store, options)
    for outcome, job_id in ids.items():
        assert recorded(store, job_id) == truth(simulator, job_id), outcome
        assert recorded(store, job_id)[-1] == outcome
    # progress samples rose monotonically and end at the final counters
    samples = store.progress(ids["SUCCESS"])
    done = [p.counters.completed for p in samples]
    assert done == sorted(done) and done[-1] == 10 and len(set(done)) == len(done)


def test_requests_per_cycle_are_list_pages_plus_discovery(
    simulator: RunningSimulator, client: MistralClient, store: Store
) -> None:
    active = 250
    simulator.simulation.seed_jobs(active, SPEC, total_requests=100)
    slow = JobSpec(endpoint=SPEC.endpoint, metadata={"sim_queue_seconds": "60"})
    simulator.simulation.seed_jobs(0, slow, total_requests=1)
    options = PollOptions(page_size=100)
    poll_once(client, store, options)  # first cycle: discovery back-fills the past
    reset_stats(simulator)
    report = poll_once(client, store, options)
    made = requests_made(simulator)
    pages = math.ceil(active / 100)
    # Before any job ended: pages of active jobs + 1 discovery page, no per-job get.
    if report.departed == 0:
        assert made == {"GET /v1/batch/jobs": pages + 1}
    assert made.get("GET /v1/batch/jobs/{job_id}", 0) == report.departed


def test_a_job_that_ends_between_cycles_costs_one_get_at_most(
    simulator: RunningSimulator, client: MistralClient, store: Store
) -> None:
    job_id = create(client, sim_queue_seconds="0", sim_run_seconds="0.3")
    options = PollOptions()
    poll_once(client, store, options)
    time.sleep(0.6)
    reset_stats(simulator)
    report = poll_once(client, store, options)
    made = requests_made(simulator)
    # The discovery page (jobs created since the last cycle, terminal) already shows the
    # job's end, so no get is needed at all.
    assert made == {"GET /v1/batch/jobs": 2}
    assert report.departed == 0
    # QUEUED lasted no time at all upstream: it could never be observed.
    assert recorded(store, job_id) == ["RUNNING", "SUCCESS"]
    assert truth(simulator, job_id) == ["QUEUED", "RUNNING", "SUCCESS"]


def test_discover_none_ignores_jobs_batchwatch_did_not_start(
    simulator: RunningSimulator, client: MistralClient, store: Store
) -> None:
    create(client)
    poll_once(client, store, PollOptions(discover="none"))
    assert store.active_jobs() == {}
    assert store.count_by_status() == {}


def test_discover_mine_skips_other_peoples_jobs(
    simulator: RunningSimulator, client: MistralClient, store: Store
) -> None:
    mine = create(client)
    simulator.simulation.seed_jobs(3, SPEC, total_requests=10, owner="other")
    poll_once(client, store, PollOptions(discover="mine"))
    assert set(store.active_jobs()) == {mine}


def test_job_deleted_upstream_keeps_history_and_is_no_longer_polled(
    simulator: RunningSimulator, client: MistralClient, store: Store
) -> None:
    job_id = create(client, sim_run_seconds="30")
    options = PollOptions()
    poll_once(client, store, options)
    simulator.simulation.delete_job(job_id)
    report = poll_once(client, store, options)
    assert report.deleted == 1
    job = store.get_job(job_id)
    assert job is not None and job.deleted_upstream_at is not None
    assert recorded(store, job_id) == ["QUEUED"]
    assert job_id not in store.active_jobs()
    reset_stats(simulator)
    poll_once(client, store, options)
    assert "GET /v1/batch/jobs/{job_id}" not in requests_made(simulator)


def test_restarted_poller_records_nothing_twice(
    simulator: RunningSimulator, client: MistralClient, sqlite_url: str
) -> None:
    """Two Store objects on one file, as two daemon lives: history continues, once."""
    job_id = create(client)
    first = Store(sqlite_url)
    first.migrate()
    poll_once(client, first, PollOptions())
    first.close()
    second = Store(sqlite_url)
    second.migrate()
    try:
        poll_until_quiet(client, second, PollOptions())
        history = recorded(second, job_id)
        assert history == truth(simulator, job_id)
        assert history.count("QUEUED") == 1
        job = second.get_job(job_id)
        assert job is not None and job.status is JobStatus.SUCCESS
    finally:
        second.close()


def _seed_where(draws: list[bool], rate: float) -> int:
    """A seed for the simulator's fault dice under which request n is faulted iff draws[n]
    (one draw per request while a single rule applies)."""
    for seed in range(10_000):
        dice = random.Random(seed)
        if [dice.random() < rate for _ in draws] == draws:
            return seed
    raise AssertionError("no seed found")


def test_a_failed_discovery_still_records_the_active_list(
    simulator: RunningSimulator, store: Store
) -> None:
    slow = JobSpec(endpoint=SPEC.endpoint, metadata={"sim_queue_seconds": "60"})
    (job_id,) = simulator.simulation.seed_jobs(1, slow, total_requests=10)
    once = MistralClient(simulator.url, SIM_API_KEY, retry=RetryPolicy(attempts=0))
    # The active list (the cycle's first request) answers; the discovery list fails.
    seed = _seed_where([False, True], 0.5)
    simulator.simulation.faults.set([FaultRule("500", rate=0.5, route=LIST)], seed=seed)
    with once, pytest.raises(PartialCycle, match="discovery: list_jobs: HTTP 500"):
        poll_once(once, store, PollOptions())
    assert [f.fault for f in simulator.simulation.faults.requests()] == [None, "500"]
    assert recorded(store, job_id) == ["QUEUED"]
    assert store.get_state(WATERMARK) is None  # discovery asks from the start again
    simulator.simulation.faults.clear()
    with MistralClient(simulator.url, SIM_API_KEY) as client:
        poll_once(client, store, PollOptions())
    assert store.get_state(WATERMARK) is not None
    assert recorded(store, job_id) == ["QUEUED"]
