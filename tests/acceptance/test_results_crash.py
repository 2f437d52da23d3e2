"""Crash safety of results: ``batchwatch serve`` is SIGKILLed at random moments while it
downloads result files (slowed down so that the kills land mid-file) and started again on
the same database and results directory. In the end every file is whole with its recorded
sha256, every job's ledger holds each of its requests exactly once, and no partial file is
left anywhere."""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.processes import API_KEY, DaemonProcess, Simulator, stop, wait_until

pytestmark = pytest.mark.acceptance

KILLS = 5
JOBS = 6
REQUESTS = 300
CONTENT = "GET /v1/files/{file_id}/content"


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Simulator]:
    sim = Simulator(tmp_path, "--queue-seconds", "0.2", "--run-seconds", "1")
    yield sim
    stop(sim.proc)


def _create_jobs(sim: Simulator) -> list[str]:
    auth = {"Authorization": f"Bearer {API_KEY}"}
    lines = "".join(
        json.dumps(
            {"custom_id": f"q{k}", "body": {"messages": [{"role": "user", "content": "x" * 200}]}}
        )
        + "\n"
        for k in range(REQUESTS)
    )
    ids = []
    for n in range(JOBS):
        uploaded = requests.post(
            f"{sim.url}/v1/files",
            headers=auth,
            files={"file": (f"in-{n}.jsonl", lines.encode(), "application/jsonl")},
            data={"purpose": "batch"},
            timeout=10,
        ).json()
        body = {
            "input_files": [uploaded["id"]],
            "endpoint": "/v1/chat/completions",
            "model": "mistral-small-latest",
            "metadata": {
                "sim_failure_rate": "0.2",
                "sim_outcome": ["SUCCESS", "TIMEOUT_EXCEEDED"][n % 2],
            },
        }
        created = requests.post(f"{sim.url}/v1/batch/jobs", headers=auth, json=body, timeout=10)
        ids.append(created.json()["id"])
    return ids


def _results(daemon: DaemonProcess, job_id: str) -> dict[str, object]:
    answer = requests.get(
        f"{daemon.url}/v1/batch/jobs/{job_id}/results", headers=daemon.headers, timeout=5
    )
    return dict(answer.json()) if answer.status_code == 200 else {}


def test_sigkill_during_downloads_leaves_whole_files_and_an_exact_ledger(
    tmp_path: Path, upstream: Simulator
) -> None:
    rng = random.Random(20261203)
    # Every download trickles out over a second or so: a kill lands in the middle of one.
    upstream.faults(
        [
            {
                "fault": "slow",
                "rate": 0.8,
                "route": CONTENT,
                "stall_seconds": 1.5,
            }
        ]
    )
    ids = _create_jobs(upstream)
    daemon = DaemonProcess(tmp_path, upstream.url, poll=0.1)
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.5, 2.0))
            daemon.kill()
            daemon.start()
        upstream.faults([])
        wait_until(
            lambda: all(_results(daemon, job_id).get("state") == "ready" for job_id in ids),
            120,
            "every job's results",
        )
    finally:
        stop(daemon.proc)

    results = tmp_path / "results"
    assert not list(results.rglob(".*.part")), "a partial file survived"
    with sqlite3.connect(tmp_path / "bw.db") as db:
        files = db.execute("SELECT job_id, path, bytes, sha256 FROM result_files").fetchall()
        per_job = db.execute(
            "SELECT job_id, COUNT(*), COUNT(DISTINCT custom_id) FROM ledger"
            " WHERE duplicate = 0 GROUP BY job_id"
        ).fetchall()
        states = db.execute("SELECT state, COUNT(*) FROM results GROUP BY state").fetchall()
    assert states == [("ready", JOBS)]
    assert {job_id for job_id, *_ in files} == set(ids)
    for _job_id, path, size, digest in files:
        content = Path(path).read_bytes()
        assert len(content) == size
        assert hashlib.sha256(content).hexdigest() == digest
    assert sorted(per_job) == sorted((job_id, REQUESTS, REQUESTS) for job_id in ids)
    downloads = [r for r in upstream.request_log() if r["route"] == CONTENT]
    assert len(downloads) > len(files), "no kill landed in a download: the test proved nothing"
