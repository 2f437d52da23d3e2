"""One poll cycle against the simulator over real HTTP, recording into a real SQLite file."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from batchwatch.models import JobPage, JobStatus, ListFilter
from batchwatch.poller import WATERMARK, PartialCycle, PollOptions, poll_once
from batchwatch.providers.mistral.client import MistralClient, RetryPolicy
from batchwatch.providers.mistral.schemas import CreateBatchJobIn
from batchwatch.simulator.faults import FaultRule
from batchwatch.simulator.jobs import JobSpec
from batchwatch.simulator.server import RunningSimulator
from batchwatch.store import Store
from tests.helpers import SIM_API_KEY

LIST = "GET /v1/batch/jobs"
SPEC = JobSpec(endpoint="/v1/chat/completions", model="mistral-small-latest")


@pytest.fixture
def client(simulator: RunningSimulator) -> Iterator[MistralClient]:
    c = MistralClient(simulator.url, SIM_API_KEY)
    yield c
    c.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[Store]:
    """A migrated store: a SQLite file, and a PostgreSQL schema when a test URL is given."""
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_schema_url")
    s = Store(url)
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
        if not store.active_job_ids():
            return
        time.sleep(0.05)
    raise AssertionError("jobs still active after the deadline")


def test_every_outcome_recorded_exactly_as_it_happened(
    simulator: RunningSimulator, client: MistralClient, store: Store
) -> None:
    # Running for 3 s (FAILED stops at half of it): long enough to be seen running by a poll
    # every 0.05 s even on a loaded machine, where a cycle can take a few hundred ms.
    ids = {
        "SUCCESS": create(client, sim_run_seconds="3"),
        "FAILED": create(client, sim_outcome="FAILED", sim_run_seconds="3"),
        "TIMEOUT_EXCEEDED": create(client, sim_outcome="TIMEOUT_EXCEEDED", sim_run_seconds="3"),
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
    assert store.active_job_ids() == set()
    assert store.count_by_status() == {}


def test_discover_mine_skips_other_peoples_jobs(
    simulator: RunningSimulator, client: MistralClient, store: Store
) -> None:
    mine = create(client)
    simulator.simulation.seed_jobs(3, SPEC, total_requests=10, owner="other")
    poll_once(client, store, PollOptions(discover="mine"))
    assert set(store.active_job_ids()) == {mine}


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
    assert job_id not in store.active_job_ids()
    reset_stats(simulator)
    poll_once(client, store, options)
    assert "GET /v1/batch/jobs/{job_id}" not in requests_made(simulator)


def test_restarted_poller_records_nothing_twice(
    simulator: RunningSimulator, client: MistralClient, sqlite_url: str
) -> None:
    """Two Store objects on one file, as two daemon lives: history continues, once."""
    first = Store(sqlite_url)
    first.migrate()
    # Created once the database is ready: migrating takes longer than the simulator's 0.3 s
    # in QUEUED on a busy machine, and the first poll must see the job queued.
    job_id = create(client)
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


# ---- discovery: newest first, stopping once every job that ended since is found ---------

ENDED = JobSpec(endpoint=SPEC.endpoint, metadata={"sim_queue_seconds": "0", "sim_run_seconds": "0"})
WAITING = JobSpec(endpoint=SPEC.endpoint, metadata={"sim_queue_seconds": "60"})


class SteppedClient(MistralClient):
    """A client that runs a test's step right after one list page (once), so the
    simulator can change between two reads of a single cycle."""

    def __init__(self, url: str, retry: RetryPolicy | None = None) -> None:
        super().__init__(url, SIM_API_KEY, retry=retry)
        self.step: tuple[Callable[[ListFilter, int], bool], Callable[[], None]] | None = None

    def after(self, when: Callable[[ListFilter, int], bool], then: Callable[[], None]) -> None:
        self.step = (when, then)

    def list_page(self, flt: ListFilter, page: int, page_size: int = 100) -> JobPage:
        found = super().list_page(flt, page, page_size)
        if self.step is not None and self.step[0](flt, page):
            then, self.step = self.step[1], None
            then()
        return found


def active_list(flt: ListFilter, page: int) -> bool:
    return JobStatus.RUNNING in flt.statuses


def discovery_page(n: int) -> Callable[[ListFilter, int], bool]:
    return lambda flt, page: flt.created_after is not None and page == n


def wait_for(sim: RunningSimulator, job_id: str, status: JobStatus) -> None:
    deadline = time.monotonic() + 10
    while sim.simulation.get_job(job_id).state.status is not status:
        assert time.monotonic() < deadline, f"{job_id} never reached {status}"
        time.sleep(0.02)


@pytest.fixture
def stepped(simulator: RunningSimulator) -> Iterator[SteppedClient]:
    c = SteppedClient(simulator.url)
    yield c
    c.close()


def test_a_cycle_where_nothing_ended_reads_one_discovery_page(
    simulator: RunningSimulator, client: MistralClient, store: Store
) -> None:
    ended = simulator.simulation.seed_jobs(350, ENDED, total_requests=1)
    simulator.simulation.seed_jobs(150, WAITING, total_requests=1)
    options = PollOptions(page_size=100)
    # The first cycle has no watermark: every terminal job ever created is discovered.
    assert poll_once(client, store, options).discovered == 350
    reset_stats(simulator)
    report = poll_once(client, store, options)
    # All 350 were created within the overlap, so they are listed again; the first page of
    # them is enough to know nothing ended since (before: 4 pages, 350 jobs parsed).
    assert requests_made(simulator) == {LIST: 2 + 1}
    assert (report.listed, report.discovered, report.transitions) == (150, 100, 0)
    assert {recorded(store, job_id)[-1] for job_id in ended} == {"SUCCESS"}


def test_a_job_that_ends_below_a_page_of_known_jobs_is_still_discovered(
    simulator: RunningSimulator, stepped: SteppedClient, store: Store
) -> None:
    """Created just after the active list was read, it outlives 150 jobs created after it:
    listed newest first, it ends up on page 1 under a page of jobs stored already."""
    options = PollOptions(page_size=100)
    poll_once(stepped, store, options)  # the watermark
    late: list[str] = []

    def create_late_then_quick() -> None:
        # It runs long enough to still be running when this cycle's discovery reads it.
        directives = {"sim_queue_seconds": "0", "sim_run_seconds": "3"}
        running = JobSpec(endpoint=SPEC.endpoint, metadata=directives)
        late.extend(simulator.simulation.seed_jobs(1, running, total_requests=1))
        time.sleep(0.01)  # strictly older than the quick ones
        simulator.simulation.seed_jobs(150, ENDED, total_requests=1)

    stepped.after(active_list, create_late_then_quick)
    assert poll_once(stepped, store, options).discovered == 150
    (job_id,) = late
    assert store.get_job(job_id) is None  # running, and read by neither list
    wait_for(simulator, job_id, JobStatus.SUCCESS)
    reset_stats(simulator)
    # Page 0 holds only known jobs, but Mistral's total says one more ended: read on.
    poll_once(stepped, store, options)
    assert requests_made(simulator) == {LIST: 1 + 2}
    assert recorded(store, job_id) == ["SUCCESS"]
    reset_stats(simulator)
    poll_once(stepped, store, options)
    assert requests_made(simulator) == {LIST: 1 + 1}


def test_a_job_pushed_to_an_unread_page_is_found_next_cycle(
    simulator: RunningSimulator, stepped: SteppedClient, store: Store
) -> None:
    """A job that ends at the top while pages are read pushes the others down one place:
    the last one of page 1 moves to page 2, which this cycle's ``total`` did not count."""
    options = PollOptions(page_size=100)
    poll_once(stepped, store, options)  # the watermark
    (oldest,) = simulator.simulation.seed_jobs(1, ENDED, total_requests=1)
    time.sleep(0.01)
    simulator.simulation.seed_jobs(199, ENDED, total_requests=1)
    time.sleep(0.01)
    # Running when this cycle's active list is read; ended before its page 1 is.
    directives = {"sim_queue_seconds": "0", "sim_run_seconds": "2"}
    running = JobSpec(endpoint=SPEC.endpoint, metadata=directives)
    (top,) = simulator.simulation.seed_jobs(1, running, total_requests=1)
    stepped.after(discovery_page(0), lambda: wait_for(simulator, top, JobStatus.SUCCESS))
    report = poll_once(stepped, store, options)
    assert report.discovered == 199  # one job read twice, the oldest not at all
    assert store.get_job(oldest) is None
    assert recorded(store, top) == ["RUNNING"]  # from the active list, before it ended
    # Next cycle: 2 news (the top one ended, the oldest never read), read until both are found.
    poll_once(stepped, store, options)
    assert recorded(store, oldest) == ["SUCCESS"]
    assert recorded(store, top) == ["RUNNING", "SUCCESS"]
    # Upstream both were QUEUED first, for no time at all: unobservable.
    assert truth(simulator, top) == truth(simulator, oldest) == ["QUEUED", "RUNNING", "SUCCESS"]
    reset_stats(simulator)
    report = poll_once(stepped, store, options)
    assert requests_made(simulator) == {LIST: 1 + 1}
    assert report.transitions == 0


def test_discover_mine_stops_early_and_other_peoples_jobs_stay_out(
    simulator: RunningSimulator, client: MistralClient, store: Store
) -> None:
    simulator.simulation.seed_jobs(150, ENDED, total_requests=1)
    simulator.simulation.seed_jobs(150, ENDED, total_requests=1, owner="other")
    options = PollOptions(discover="mine", page_size=100)
    poll_once(client, store, options)
    reset_stats(simulator)
    poll_once(client, store, options)
    assert requests_made(simulator) == {LIST: 1 + 1}
    assert store.count_by_status() == {"SUCCESS": 150}


def test_a_stored_job_the_list_cannot_return_makes_discovery_read_every_page(
    simulator: RunningSimulator, client: MistralClient, store: Store
) -> None:
    """Someone else's ended job, stored while discovery was "all", is not in "mine"'s
    total: the count proves nothing then, and no page is skipped on its strength."""
    simulator.simulation.seed_jobs(1, ENDED, total_requests=1, owner="other")
    poll_once(client, store, PollOptions())
    simulator.simulation.seed_jobs(150, ENDED, total_requests=1)
    options = PollOptions(discover="mine", page_size=100)
    poll_once(client, store, options)
    reset_stats(simulator)
    poll_once(client, store, options)
    assert requests_made(simulator) == {LIST: 1 + 2}
    assert store.count_by_status() == {"SUCCESS": 151}


def test_discover_none_reads_no_discovery_page(
    simulator: RunningSimulator, client: MistralClient, store: Store
) -> None:
    simulator.simulation.seed_jobs(150, ENDED, total_requests=1)
    options = PollOptions(discover="none", page_size=100)
    poll_once(client, store, options)
    reset_stats(simulator)
    poll_once(client, store, options)
    assert requests_made(simulator) == {LIST: 1}
    assert store.get_state(WATERMARK) is None
    assert store.count_by_status() == {}


@pytest.mark.parametrize(
    ("fault", "raised"), [("500", True), ("missing_field", False)], ids=["failed", "malformed"]
)
def test_a_discovery_page_not_read_keeps_the_watermark_and_is_read_next_cycle(
    simulator: RunningSimulator, store: Store, fault: str, raised: bool
) -> None:
    stepped = SteppedClient(simulator.url, retry=RetryPolicy(attempts=0))
    options = PollOptions(page_size=100)
    with stepped:
        poll_once(stepped, store, options)
        mark = store.get_state(WATERMARK)
        simulator.simulation.seed_jobs(250, ENDED, total_requests=1)
        time.sleep(1.1)  # the watermark would move by a whole second
        rule = FaultRule(fault, times=1, route=LIST)
        stepped.after(discovery_page(0), lambda: simulator.simulation.faults.set([rule]))
        if raised:
            with pytest.raises(PartialCycle, match="discovery: list_jobs: HTTP 500"):
                poll_once(stepped, store, options)
        else:
            poll_once(stepped, store, options)
        assert store.get_state(WATERMARK) == mark
        poll_once(stepped, store, options)
        assert store.get_state(WATERMARK) != mark
        assert store.count_by_status() == {"SUCCESS": 250}
