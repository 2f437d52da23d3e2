"""batchwatch's Mistral client against the simulator over loopback, faults included.

Pagination and the query encoding, then each upstream failure: is it retried (and does the
retry wait out ``Retry-After``), and does the ``ApiError`` that escapes say truthfully
whether a retry can help. The simulator's request log is the witness of what was sent.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchwatch.errors import ApiError
from batchwatch.models import JobStatus, ListFilter
from batchwatch.providers.mistral.client import MistralClient, RetryPolicy
from batchwatch.providers.mistral.schemas import CreateBatchJobIn
from batchwatch.simulator.fault_injector import LoggedRequest
from batchwatch.simulator.faults import FaultRule
from batchwatch.simulator.jobs import JobSpec
from batchwatch.simulator.server import RunningSimulator, start_in_thread
from batchwatch.simulator.settings import SimulatorSettings
from tests.helpers import SIM_API_KEY, fresh_simulator

GET_JOB = "GET /v1/batch/jobs/{job_id}"
LIST = "GET /v1/batch/jobs"
CREATE = "POST /v1/batch/jobs"
CANCEL_JOB = "POST /v1/batch/jobs/{job_id}/cancel"


@pytest.fixture(scope="module")
def running() -> Iterator[RunningSimulator]:
    """One simulator for the module; jobs stay QUEUED unless their metadata says otherwise."""
    settings = SimulatorSettings(api_key=SIM_API_KEY, queue_seconds=600, run_seconds=600)
    simulator = start_in_thread(settings)
    yield simulator
    simulator.stop()


@pytest.fixture
def sim(running: RunningSimulator) -> Iterator[RunningSimulator]:
    yield from fresh_simulator(running)


def client(url: str, attempts: int = 3, **kwargs: Any) -> MistralClient:
    policy = RetryPolicy(attempts=attempts, backoff_factor=0.01, jitter=0)
    kwargs.setdefault("timeout", 5.0)
    return MistralClient(url, SIM_API_KEY, retry=policy, **kwargs)


def seed(sim: RunningSimulator, count: int, **metadata: str) -> list[str]:
    spec = JobSpec(endpoint="/v1/chat/completions", model="mistral-small-latest", metadata=metadata)
    ids: list[str] = sim.simulation.seed_jobs(count, spec, total_requests=10)
    return ids


def sent(sim: RunningSimulator, route: str) -> list[LoggedRequest]:
    return [r for r in sim.simulation.faults.requests() if r.route == route]


def create_request(marker: str) -> CreateBatchJobIn:
    return CreateBatchJobIn.model_validate(
        {
            "endpoint": "/v1/chat/completions",
            "model": "mistral-small-latest",
            "requests": ({"custom_id": "0", "body": {"messages": []}},),
            "metadata": {"probe": marker},
        }
    )


# --- Pagination and the query string -----------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 4])
def test_list_all_reads_every_page_and_every_job_once(
    sim: RunningSimulator, concurrency: int
) -> None:
    marker = uuid.uuid4().hex
    ids = seed(sim, 250, batch=marker)
    with client(sim.url) as c:
        jobs = c.list_all(ListFilter(metadata={"batch": marker}), 100, concurrency).jobs
    assert sorted(job.id for job in jobs) == sorted(ids)
    assert len(sent(sim, LIST)) == 3


def test_statuses_are_sent_as_a_repeated_parameter(sim: RunningSimulator) -> None:
    """The simulator takes ``status`` as a list (a comma-joined value would be a 422), so
    getting both kinds back, and only them, proves the key was repeated."""
    marker = uuid.uuid4().hex
    running = seed(sim, 3, set=marker, sim_queue_seconds="0")
    queued = seed(sim, 2, set=marker)
    seed(sim, 1, set=marker, sim_queue_seconds="0", sim_run_seconds="0")  # SUCCESS
    flt = ListFilter(statuses=(JobStatus.RUNNING, JobStatus.QUEUED), metadata={"set": marker})
    with client(sim.url) as c:
        jobs = c.list_all(flt).jobs
    assert sorted(job.id for job in jobs) == sorted(running + queued)
    assert {job.status for job in jobs} == {JobStatus.RUNNING, JobStatus.QUEUED}


# --- Retries ------------------------------------------------------------------------------------


def test_rate_limits_and_unavailability_are_waited_out(sim: RunningSimulator) -> None:
    (job_id,) = seed(sim, 1)
    sim.simulation.faults.set(
        [FaultRule("503", times=1, retry_after=1), FaultRule("429", times=1, retry_after=1)]
    )
    with client(sim.url) as c:
        assert c.get_job(job_id).id == job_id
    log = sent(sim, GET_JOB)
    assert [(r.status, r.fault) for r in log] == [(503, "503"), (429, "429"), (200, None)]
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(log)]
    assert all(gap >= 1.0 for gap in gaps), gaps


@pytest.mark.parametrize("fault", ["reset", "stall"])
def test_a_lost_read_is_retried(sim: RunningSimulator, fault: str) -> None:
    (job_id,) = seed(sim, 1)
    sim.simulation.faults.set([FaultRule(fault, times=1, stall_seconds=0.5)])
    with client(sim.url, timeout=0.2) as c:
        assert c.get_job(job_id).id == job_id
    assert [r.fault for r in sent(sim, GET_JOB)] == [fault, None]


def test_a_server_error_that_persists_is_a_retryable_500(sim: RunningSimulator) -> None:
    (job_id,) = seed(sim, 1)
    sim.simulation.faults.set([FaultRule("500")])
    with client(sim.url, attempts=2) as c, pytest.raises(ApiError) as caught:
        c.get_job(job_id)
    assert (caught.value.status_code, caught.value.retryable) == (500, True)
    assert len(sent(sim, GET_JOB)) == 3  # the first try and two retries


def test_an_unknown_job_is_a_final_404(sim: RunningSimulator) -> None:
    with client(sim.url) as c, pytest.raises(ApiError) as caught:
        c.get_job(str(uuid.uuid4()))
    assert (caught.value.status_code, caught.value.retryable) == (404, False)
    assert len(sent(sim, GET_JOB)) == 1


@pytest.mark.parametrize("fault", ["garbage", "truncate", "missing_field"])
def test_an_unusable_answer_is_retryable(sim: RunningSimulator, fault: str) -> None:
    (job_id,) = seed(sim, 1)
    sim.simulation.faults.set([FaultRule(fault)])
    with client(sim.url) as c, pytest.raises(ApiError) as caught:
        c.get_job(job_id)
    assert caught.value.retryable


@pytest.mark.parametrize("fault", ["garbage", "truncate"])
def test_a_read_whose_body_broke_is_sent_again(sim: RunningSimulator, fault: str) -> None:
    (job_id,) = seed(sim, 1)
    sim.simulation.faults.set([FaultRule(fault, times=2)])
    reasons: list[str] = []
    with client(sim.url, on_retry=reasons.append) as c:
        assert c.get_job(job_id).id == job_id
    assert [r.fault for r in sent(sim, GET_JOB)] == [fault, fault, None]
    assert reasons == ["body", "body"]


def test_a_broken_body_is_retried_only_within_the_attempts(sim: RunningSimulator) -> None:
    (job_id,) = seed(sim, 1)
    sim.simulation.faults.set([FaultRule("truncate")])
    with client(sim.url, attempts=2) as c, pytest.raises(ApiError) as caught:
        c.get_job(job_id)
    assert "ChunkedEncodingError" in caught.value.message
    assert len(sent(sim, GET_JOB)) == 3  # the first try and two retries


def test_a_cancel_whose_answer_broke_is_not_sent_again(sim: RunningSimulator) -> None:
    (job_id,) = seed(sim, 1)
    sim.simulation.faults.set([FaultRule("garbage", route=CANCEL_JOB)])
    with client(sim.url) as c, pytest.raises(ApiError):
        c.cancel_job(job_id)
    assert len(sent(sim, CANCEL_JOB)) == 1


def test_an_unknown_status_is_kept_raw(sim: RunningSimulator) -> None:
    (job_id,) = seed(sim, 1)
    sim.simulation.faults.set([FaultRule("unknown_status")])
    with client(sim.url) as c:
        job = c.get_job(job_id)
    assert (job.status, job.raw_status) == (JobStatus.UNKNOWN, "PAUSED")


def test_no_server_is_a_retryable_error_without_status() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with client(f"http://127.0.0.1:{port}", attempts=1) as c, pytest.raises(ApiError) as caught:
        c.list_page(ListFilter(), 0)
    assert (caught.value.status_code, caught.value.retryable) == (None, True)


def test_a_create_whose_answer_is_lost_is_not_sent_again(sim: RunningSimulator) -> None:
    marker = uuid.uuid4().hex
    sim.simulation.faults.set([FaultRule("drop_create", times=1)])
    with client(sim.url) as c:
        with pytest.raises(ApiError) as caught:
            c.create_job(create_request(marker))
        page = c.list_page(ListFilter(metadata={"probe": marker}), 0)
    assert (caught.value.status_code, caught.value.retryable) == (None, True)
    assert [(r.status, r.fault) for r in sent(sim, CREATE)] == [(None, "drop_create")]
    assert page.total == 1  # it exists: the caller has to find it, not create it again


def test_a_file_uploads_and_downloads_unchanged(sim: RunningSimulator, tmp_path: Path) -> None:
    content = b'{"custom_id": "0", "body": {"messages": []}}\n{"custom_id": "1", "body": {}}\n'
    path = tmp_path / "input.jsonl"
    path.write_bytes(content)
    with client(sim.url) as c:
        info = c.upload_file(path)
        assert (info.filename, info.bytes, info.num_lines, info.purpose) == (
            "input.jsonl", len(content), 2, "batch",
        )  # fmt: skip
        assert c.download_file(info.id) == content


def test_a_stop_cuts_a_retry_after_wait_short(sim: RunningSimulator) -> None:
    sim.simulation.faults.set([FaultRule("429", retry_after=30)])
    stop = threading.Event()
    timer = threading.Timer(0.3, stop.set)
    started = time.monotonic()
    timer.start()
    try:
        with client(sim.url, stop=stop) as c, pytest.raises(ApiError) as caught:
            c.list_page(ListFilter(), 0)
    finally:
        timer.cancel()
    assert time.monotonic() - started < 5
    assert caught.value.retryable
    assert len(sent(sim, LIST)) == 1


# --- The environment, read once --------------------------------------------------------------


def test_a_netrc_entry_never_replaces_the_api_key(
    sim: RunningSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests would put a matching ~/.netrc entry's credentials in place of the bearer
    token (and read the file on every request); the simulator would then answer 401."""
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password not-the-key\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HOME", str(tmp_path))
    seed(sim, 1)
    with client(sim.url) as c:
        assert c.list_page(ListFilter(), 0, 1).total >= 1


def test_proxy_variables_are_honoured_as_they_were_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    with MistralClient("https://api.mistral.ai", "key") as routed:
        assert routed._session.proxies.get("https") == "http://proxy.example:3128"
    with MistralClient("https://internal.example", "key") as bypassed:
        assert "https" not in bypassed._session.proxies
