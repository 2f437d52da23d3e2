"""Results of ended jobs, end to end: a daemon in this process against the simulator on
loopback, real files under ``results.dir``, the ledger and the routes read back over HTTP."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests

from batchwatch.config import ResultsSettings
from batchwatch.daemon import Daemon
from batchwatch.errors import ApiError
from batchwatch.providers.mistral.client import MistralClient
from batchwatch.simulator.faults import FaultRule
from batchwatch.simulator.server import RunningSimulator
from tests.helpers import SIM_API_KEY, daemon_settings, wait_for

REQUESTS = 20


@pytest.fixture
def results_daemon(tmp_path: Path, simulator: RunningSimulator) -> Iterator[Daemon]:
    settings = daemon_settings(tmp_path, simulator.url)
    settings = replace(settings, results=ResultsSettings(dir=tmp_path / "results"))
    d = Daemon(settings, threading.Event())
    d.start()
    try:
        yield d
    finally:
        d.close()


def _api(daemon: Daemon, tmp_path: Path, method: str, path: str, **kw: Any) -> requests.Response:
    token = (tmp_path / "token").read_text().strip()
    headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
    return requests.request(method, daemon.api_url + path, headers=headers, timeout=10, **kw)


def _input_lines(n: int = REQUESTS) -> bytes:
    lines = (
        json.dumps(
            {"custom_id": f"req-{k}", "body": {"messages": [{"role": "user", "content": str(k)}]}}
        )
        for k in range(n)
    )
    return ("\n".join(lines) + "\n").encode()


def _create(daemon: Daemon, tmp_path: Path, *, failing: str = "0.3", **extra: Any) -> str:
    """A job of ``REQUESTS`` requests created through the daemon, from an uploaded file; the
    simulator fails the ``failing`` share of them."""
    files = {"file": ("in.jsonl", _input_lines(), "application/jsonl")}
    uploaded = _api(daemon, tmp_path, "POST", "/v1/files", files=files, data={"purpose": "batch"})
    assert uploaded.status_code == 200, uploaded.text
    body = {
        "input_files": [uploaded.json()["id"]],
        "endpoint": "/v1/chat/completions",
        "model": "mistral-small-latest",
        "metadata": {"team": "search", "sim_failure_rate": failing},
        **extra,
    }
    created = _api(daemon, tmp_path, "POST", "/v1/batch/jobs", json=body)
    assert created.status_code == 200, created.text
    return str(created.json()["id"])


def _ready(daemon: Daemon, tmp_path: Path, job_id: str, seconds: float = 20) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def ready() -> bool:
        found.update(_api(daemon, tmp_path, "GET", f"/v1/batch/jobs/{job_id}/results").json())
        return found.get("state") in ("ready", "unavailable")

    wait_for(ready, seconds)
    return found


def test_an_ended_job_s_files_are_downloaded_and_its_ledger_matches_upstream(
    results_daemon: Daemon, tmp_path: Path, simulator: RunningSimulator
) -> None:
    job_id = _create(results_daemon, tmp_path)
    results = _ready(results_daemon, tmp_path, job_id)
    assert results["state"] == "ready", results
    directory = tmp_path / "results" / job_id
    for f in results["files"]:
        path = Path(f["path"])
        assert path.parent == directory
        assert path.stat().st_size == f["bytes"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == f["sha256"]
    assert {f["kind"] for f in results["files"]} >= {"input", "output"}
    assert not list(directory.glob(".*.part")), "a partial file was left behind"
    with MistralClient(simulator.url, SIM_API_KEY) as upstream:
        job = upstream.get_job(job_id)
    counts = results["counts"]
    assert counts["total"] == REQUESTS
    assert counts["succeeded"] == job.counters.succeeded
    assert counts["failed"] == job.counters.failed
    assert counts["succeeded"] + counts["failed"] + counts["not_run"] == REQUESTS
    assert results["usage"]["total_tokens"] > 0
    failed = _api(
        results_daemon,
        tmp_path,
        "GET",
        f"/v1/batch/jobs/{job_id}/requests",
        params={"outcome": "failed"},
    ).json()
    assert failed["total"] == counts["failed"]
    assert all(row["outcome"] == "failed" for row in failed["data"])
    every = _api(results_daemon, tmp_path, "GET", f"/v1/batch/jobs/{job_id}/requests").json()
    assert sorted(r["custom_id"] for r in every["data"]) == sorted(
        f"req-{k}" for k in range(REQUESTS)
    )


def test_retry_makes_one_child_of_the_requests_that_did_not_succeed(
    results_daemon: Daemon, tmp_path: Path, simulator: RunningSimulator
) -> None:
    job_id = _create(results_daemon, tmp_path)
    results = _ready(results_daemon, tmp_path, job_id)
    assert results["counts"]["failed"] > 0, "the simulator failed no request: nothing to retry"
    first = _api(results_daemon, tmp_path, "POST", f"/v1/batch/jobs/{job_id}/retry", json={})
    assert first.status_code == 200, first.text
    again = _api(results_daemon, tmp_path, "POST", f"/v1/batch/jobs/{job_id}/retry", json={})
    assert again.status_code == 200, again.text
    child = first.json()
    assert again.json()["id"] == child["id"], "the same retry asked twice made two children"
    assert child["metadata"]["batchwatch_parent"] == job_id
    assert child["metadata"]["team"] == "search"
    with MistralClient(simulator.url, SIM_API_KEY) as upstream:
        content = upstream.download_file(child["input_files"][0])
    retried = sorted(json.loads(line)["custom_id"] for line in content.splitlines())
    ledger = _api(
        results_daemon,
        tmp_path,
        "GET",
        f"/v1/batch/jobs/{job_id}/requests",
        params={"outcome": ["failed", "not_run"], "page_size": 1000},
    ).json()
    assert retried == sorted(r["custom_id"] for r in ledger["data"])


def test_nothing_to_retry_is_409(results_daemon: Daemon, tmp_path: Path) -> None:
    job_id = _create(results_daemon, tmp_path, failing="0")
    _ready(results_daemon, tmp_path, job_id)
    answer = _api(
        results_daemon,
        tmp_path,
        "POST",
        f"/v1/batch/jobs/{job_id}/retry",
        json={"only": ["not_run"]},
    )
    assert answer.status_code == 409
    assert "no not_run requests" in answer.json()["detail"]


def test_delete_waits_for_the_results_then_keeps_the_history(
    results_daemon: Daemon, tmp_path: Path, simulator: RunningSimulator
) -> None:
    job_id = _create(results_daemon, tmp_path, timeout_hours=1)
    early = _api(results_daemon, tmp_path, "DELETE", f"/v1/batch/jobs/{job_id}")
    assert early.status_code == 409
    _ready(results_daemon, tmp_path, job_id)
    deleted = _api(results_daemon, tmp_path, "DELETE", f"/v1/batch/jobs/{job_id}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"id": job_id, "object": "batch", "deleted": True}
    with MistralClient(simulator.url, SIM_API_KEY) as upstream, pytest.raises(ApiError) as gone:
        upstream.get_job(job_id)
    assert gone.value.status_code == 404
    kept = _api(results_daemon, tmp_path, "GET", f"/v1/batch/jobs/{job_id}")
    assert kept.status_code == 200
    actions = _api(results_daemon, tmp_path, "GET", f"/v1/batch/jobs/{job_id}/actions").json()
    assert [a["action"] for a in actions["data"]][-1] == "delete"


def test_usage_sums_the_tokens_of_ready_jobs(results_daemon: Daemon, tmp_path: Path) -> None:
    job_id = _create(results_daemon, tmp_path)
    results = _ready(results_daemon, tmp_path, job_id)
    usage = _api(results_daemon, tmp_path, "GET", "/v1/usage").json()["data"]
    assert usage == [
        {
            "key": "mistral-small-latest",
            "jobs": 1,
            "requests": REQUESTS,
            **results["usage"],
            "cost": None,
        }
    ]
    by_team = _api(
        results_daemon, tmp_path, "GET", "/v1/usage", params={"group_by": "metadata.team"}
    ).json()["data"]
    assert [g["key"] for g in by_team] == ["search"]


CONTENT = "GET /v1/files/{file_id}/content"


@pytest.mark.parametrize("fault", ["reset", "truncate"])
def test_downloads_cut_short_are_retried_to_whole_files(
    results_daemon: Daemon, tmp_path: Path, simulator: RunningSimulator, fault: str
) -> None:
    """Three in ten downloads broken on the way: every file still ends complete, its
    checksum the simulator's own content's, and no part left behind."""
    simulator.simulation.faults.set([FaultRule(fault, rate=0.3, route=CONTENT)], seed=3)
    jobs = [_create(results_daemon, tmp_path) for _ in range(4)]
    for job_id in jobs:
        results = _ready(results_daemon, tmp_path, job_id, seconds=60)
        assert results["state"] == "ready", results
        for f in results["files"]:
            original = simulator.simulation.get_file(f["file_id"]).content
            assert hashlib.sha256(original).hexdigest() == f["sha256"]
            assert Path(f["path"]).read_bytes() == original
        assert not list((tmp_path / "results" / job_id).glob(".*.part"))
    fired = sum(count.fired for count in simulator.simulation.faults.rules())
    assert fired > 0, "no download was broken: the test proved nothing"


def test_a_file_gone_upstream_makes_the_results_unavailable(
    results_daemon: Daemon, tmp_path: Path, simulator: RunningSimulator
) -> None:
    job_id = _create(results_daemon, tmp_path, timeout_hours=2)
    job = _api(results_daemon, tmp_path, "GET", f"/v1/batch/jobs/{job_id}").json()
    gone = requests.delete(
        f"{simulator.url}/v1/files/{job['input_files'][0]}",
        headers={"Authorization": f"Bearer {SIM_API_KEY}"},
        timeout=5,
    )
    assert gone.status_code == 200
    results = _ready(results_daemon, tmp_path, job_id)
    assert results["state"] == "unavailable"
    assert "404" in results["reason"]
    assert results["attempts"] == 1
    assert not (tmp_path / "results" / job_id / "input.jsonl").exists()


def test_an_unwritable_results_dir_degrades_health_and_keeps_the_job_pending(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the results directory's parent should be")
    settings = replace(
        daemon_settings(tmp_path, simulator.url),
        results=ResultsSettings(dir=blocker / "results"),
    )
    daemon = Daemon(settings, threading.Event())
    daemon.start()
    try:
        job_id = _create(daemon, tmp_path)

        def degraded() -> bool:
            answer = requests.get(f"{daemon.api_url}/healthz", timeout=5)
            return answer.status_code == 503 and any(
                "results.dir" in reason for reason in answer.json()["reasons"]
            )

        wait_for(degraded, 20)
        results = _api(daemon, tmp_path, "GET", f"/v1/batch/jobs/{job_id}/results").json()
        assert results["state"] == "pending"
        assert "cannot write results" in results["reason"]
    finally:
        daemon.close()


def test_the_official_sdk_deletes_through_the_daemon(
    results_daemon: Daemon, tmp_path: Path
) -> None:
    from mistralai.client import Mistral

    job_id = _create(results_daemon, tmp_path)
    _ready(results_daemon, tmp_path, job_id)
    token = (tmp_path / "token").read_text().strip()
    answer = Mistral(api_key=token, server_url=results_daemon.api_url).batch.jobs.delete(
        job_id=job_id
    )
    assert (answer.id, answer.object, answer.deleted) == (job_id, "batch", True)


def test_an_inline_job_created_here_has_its_unrun_requests_in_the_ledger(
    results_daemon: Daemon, tmp_path: Path
) -> None:
    body = {
        "endpoint": "/v1/chat/completions",
        "model": "mistral-small-latest",
        "requests": [{"custom_id": f"i{k}", "body": {"messages": []}} for k in range(10)],
        "metadata": {"sim_outcome": "TIMEOUT_EXCEEDED"},
    }
    created = _api(results_daemon, tmp_path, "POST", "/v1/batch/jobs", json=body)
    assert created.status_code == 200, created.text
    results = _ready(results_daemon, tmp_path, created.json()["id"])
    assert results["state"] == "ready", results
    inputs = [f for f in results["files"] if f["kind"] == "input"]
    assert [f["file_id"] for f in inputs] == [None]
    counts = results["counts"]
    assert counts["total"] == 10
    assert counts["not_run"] > 0, "a timed-out job ran every request: nothing was tested"
    assert counts["succeeded"] + counts["failed"] + counts["not_run"] == 10


def _ingest_children() -> list[int]:
    """This process's ingest child (a spawned multiprocessing worker)."""
    import os

    found = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:
                found.append(int(child))
    return found


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc (Linux)")
def test_an_ingest_process_killed_mid_ledger_is_replaced_and_the_ledger_is_exact(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    """The fault no test can ask the simulator for: the ledger's process dies (the OOM
    killer, say) in the middle of a big job. The attempt fails, a new process takes the
    next one, and the ledger has each request once."""
    import os
    import signal
    import time
    from datetime import UTC, datetime

    from batchwatch.poller import PollOptions, poll_once
    from batchwatch.results.worker import ResultsOptions, ResultsWorker
    from batchwatch.simulator.jobs import JobSpec
    from batchwatch.store import Store, ledger
    from batchwatch.store import results as stored

    spec = JobSpec(
        "/v1/chat/completions", "m", metadata={"sim_queue_seconds": "0", "sim_run_seconds": "0.1"}
    )
    (job_id,) = simulator.simulation.seed_jobs(1, spec, 60_000, pad_bytes=200)
    time.sleep(0.3)
    store = Store(f"sqlite:///{tmp_path / 'bw.db'}")
    store.migrate()
    stop = threading.Event()
    with MistralClient(simulator.url, SIM_API_KEY) as client:
        poll_once(client, store, PollOptions())
        worker = ResultsWorker(
            {"mistral": client},
            store,
            ResultsOptions(tmp_path / "results", backoff_base=0.01),
            stop=stop,
        )
        stored.queue_ended(store, datetime.now(UTC))
        worker.fetch(job_id)  # spawns the ingest process; the ledger is built once
        first = stored.job_results(store, job_id)
        assert first is not None and first.state.value == "ready"
        stored.finish_failed(store, job_id, "again", datetime.now(UTC), retry_at=datetime.now(UTC))
        outcome: list[str] = []
        runner = threading.Thread(target=lambda: outcome.append(worker.fetch(job_id)))
        runner.start()

        def downloading() -> bool:
            found = stored.job_results(store, job_id)
            return found is not None and found.state.value == "downloading"

        wait_for(downloading, 10)
        time.sleep(0.5)  # into the ledger
        for child in _ingest_children():
            os.kill(child, signal.SIGKILL)
        runner.join(60)
        failed = stored.job_results(store, job_id)
        assert outcome == ["pending"], outcome
        assert failed is not None and "died" in (failed.reason or "")
        time.sleep(0.05)
        assert worker.fetch(job_id) == "ready"
        worker.shutdown()
    done = stored.job_results(store, job_id)
    assert done is not None and done.counts is not None and done.counts.total == 60_000
    _, total = ledger.ledger_page(store, job_id, [], 0, 1)
    assert total == 60_000
    store.close()
