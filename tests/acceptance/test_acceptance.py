"""Acceptance: the real ``batchwatch serve`` process against the real ``batchwatch simulate``
process, over loopback. Twenty jobs run to every terminal status; the recorded history must
equal the simulator's true status sequence exactly; SIGTERM stops the daemon with exit 0."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchwatch.providers.mistral.client import MistralClient
from batchwatch.providers.mistral.schemas import CreateBatchJobIn
from tests.processes import API_KEY, DaemonProcess, Simulator, stop, wait_until

pytestmark = pytest.mark.acceptance


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Simulator]:
    sim = Simulator(
        tmp_path, "--queue-seconds", "0.8", "--run-seconds", "1.6", "--cancel-seconds", "0.8"
    )
    yield sim
    stop(sim.proc)


@pytest.fixture
def daemon(tmp_path: Path, upstream: Simulator) -> Iterator[DaemonProcess]:
    d = DaemonProcess(tmp_path, upstream.url)
    yield d
    stop(d.proc)  # only if the test failed before stopping it


# (how many, directives, when to cancel: None, "QUEUED" or "RUNNING")
PLAN: list[tuple[int, dict[str, str], str | None]] = [
    (5, {}, None),
    (2, {"sim_failure_rate": "0.25"}, None),
    (4, {"sim_outcome": "FAILED"}, None),
    (3, {"sim_outcome": "TIMEOUT_EXCEEDED"}, None),
    (3, {"sim_queue_seconds": "30"}, "QUEUED"),
    (3, {"sim_run_seconds": "30"}, "RUNNING"),
]


def create_jobs(upstream: Simulator) -> list[tuple[str, str | None]]:
    client = MistralClient(upstream.url, API_KEY)
    jobs: list[tuple[str, str | None]] = []
    for count, directives, cancel_in in PLAN:
        for _ in range(count):
            request = CreateBatchJobIn.model_validate(
                {
                    "endpoint": "/v1/chat/completions",
                    "model": "mistral-small-latest",
                    "requests": tuple(
                        {"custom_id": str(n), "body": {"messages": []}} for n in range(8)
                    ),
                    "metadata": directives or None,
                }
            )
            jobs.append((client.create_job(request).id, cancel_in))
    return jobs


def test_twenty_jobs_recorded_exactly_and_sigterm_exits_zero(
    daemon: DaemonProcess, upstream: Simulator
) -> None:
    jobs = create_jobs(upstream)
    assert len(jobs) == 20
    client = MistralClient(upstream.url, API_KEY)

    # Cancel each job once batchwatch has seen it in the status we want to cancel it from.
    pending = {job_id: state for job_id, state in jobs if state}
    deadline = time.monotonic() + 30
    while pending and time.monotonic() < deadline:
        for job_id, state in list(pending.items()):
            if [t["to_status"] for t in daemon.recorded(job_id)][-1:] == [state]:
                client.cancel_job(job_id)
                del pending[job_id]
        time.sleep(0.05)
    assert not pending, f"never seen in the status to cancel from: {pending}"

    wait_until(lambda: daemon.all_ended(20), 60, "every job to end")

    outcomes = set()
    total = 0
    for job_id, _ in jobs:
        truth = [status for status, _ in upstream.truth(job_id)]
        recorded = [t["to_status"] for t in daemon.recorded(job_id)]
        assert recorded == truth, job_id
        outcomes.add(recorded[-1])
        total += len(recorded)
    assert outcomes == {"SUCCESS", "FAILED", "TIMEOUT_EXCEEDED", "CANCELLED"}

    assert daemon.terminate() == 0
    log_text = daemon.log.read_text()
    assert "Traceback" not in log_text
    assert API_KEY not in log_text
    events = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    assert sum(e["event"] == "job_transitioned" for e in events) == total
    assert events[-1]["event"] == "daemon_stopped"
