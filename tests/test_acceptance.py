"""Acceptance: the real ``batchwatch serve`` process against the real ``batchwatch simulate``
process, over loopback. Twenty jobs run to every terminal status; the recorded history must
equal the simulator's true status sequence exactly; SIGTERM stops the daemon with exit 0."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from batchwatch.client import CreateRequest, MistralClient

pytestmark = pytest.mark.acceptance

API_KEY = "acceptance-secret-key-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def spawn(*args: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "batchwatch", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = spawn(
        "simulate",
        "--port",
        str(port),
        "--api-key",
        API_KEY,
        "--queue-seconds",
        "0.8",
        "--run-seconds",
        "1.6",
        "--cancel-seconds",
        "0.8",
        log=tmp_path / "simulator.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(f"{url}/_sim/stats", timeout=1).ok, 30, "simulator")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Daemon:
    def __init__(self, tmp_path: Path, upstream: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "daemon.log"
        config = tmp_path / "batchwatch.toml"
        config.write_text(
            f'[mistral]\nserver_url = "{upstream}"\n'
            "[tracking]\npoll_interval_seconds = 0.1\n"
            f'[database]\nurl = "sqlite:///{tmp_path / "bw.db"}"\n'
            f'[api]\nport = {self.port}\ntoken_file = "{tmp_path / "token"}"\n'
            '[log]\nlevel = "info"\nformat = "json"\n'
        )
        self.proc = spawn(
            "--config", str(config), "serve", log=self.log, env={"MISTRAL_API_KEY": API_KEY}
        )
        wait_until(lambda: requests.get(f"{self.url}/healthz", timeout=1).ok, 30, "daemon")
        self.headers = {"Authorization": f"Bearer {(tmp_path / 'token').read_text().strip()}"}

    def get(self, path: str) -> Any:
        response = requests.get(self.url + path, headers=self.headers, timeout=5)
        response.raise_for_status()
        return response.json()

    def recorded(self, job_id: str) -> list[str]:
        response = requests.get(
            f"{self.url}/v1/batch/jobs/{job_id}/transitions", headers=self.headers, timeout=5
        )
        if response.status_code == 404:
            return []  # not discovered yet
        response.raise_for_status()
        return [t["to_status"] for t in response.json()["data"]]


# (how many, directives, when to cancel: None, "QUEUED" or "RUNNING")
PLAN: list[tuple[int, dict[str, str], str | None]] = [
    (5, {}, None),
    (2, {"sim_failure_rate": "0.25"}, None),
    (4, {"sim_outcome": "FAILED"}, None),
    (3, {"sim_outcome": "TIMEOUT_EXCEEDED"}, None),
    (3, {"sim_queue_seconds": "30"}, "QUEUED"),
    (3, {"sim_run_seconds": "30"}, "RUNNING"),
]


@pytest.fixture
def daemon(tmp_path: Path, upstream: str) -> Iterator[Daemon]:
    d = Daemon(tmp_path, upstream)
    try:
        yield d
    finally:
        if d.proc.poll() is None:  # the test failed before stopping it
            d.proc.kill()
            d.proc.wait(timeout=10)


def test_twenty_jobs_recorded_exactly_and_sigterm_exits_zero(daemon: Daemon, upstream: str) -> None:
    client = MistralClient(upstream, API_KEY)
    jobs: list[tuple[str, str | None]] = []
    for count, directives, cancel_in in PLAN:
        for _ in range(count):
            request = CreateRequest(
                endpoint="/v1/chat/completions",
                model="mistral-small-latest",
                requests=tuple({"custom_id": str(n), "body": {"messages": []}} for n in range(8)),
                metadata=directives or None,
            )
            jobs.append((client.create_job(request).id, cancel_in))
    assert len(jobs) == 20

    # Cancel each job once batchwatch has seen it in the status we want to cancel it from.
    pending = {job_id: state for job_id, state in jobs if state}
    deadline = time.monotonic() + 30
    while pending and time.monotonic() < deadline:
        for job_id, state in list(pending.items()):
            if daemon.recorded(job_id)[-1:] == [state]:
                client.cancel_job(job_id)
                del pending[job_id]
        time.sleep(0.05)
    assert not pending, f"never seen in the status to cancel from: {pending}"

    def all_ended() -> bool:
        listed = daemon.get("/v1/batch/jobs?page_size=100")["data"]
        ended = {"SUCCESS", "FAILED", "TIMEOUT_EXCEEDED", "CANCELLED"}
        return len(listed) == 20 and all(job["status"] in ended for job in listed)

    wait_until(all_ended, 60, "every job to end")

    outcomes = set()
    total = 0
    for job_id, _ in jobs:
        truth = [
            e["status"]
            for e in requests.get(f"{upstream}/_sim/jobs/{job_id}/history", timeout=5).json()[
                "statuses"
            ]
        ]
        recorded = daemon.recorded(job_id)
        assert recorded == truth, job_id
        outcomes.add(recorded[-1])
        total += len(recorded)
    assert outcomes == {"SUCCESS", "FAILED", "TIMEOUT_EXCEEDED", "CANCELLED"}

    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=15) == 0
    log_text = daemon.log.read_text()
    assert "Traceback" not in log_text
    assert API_KEY not in log_text
    events = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    assert sum(e["event"] == "job_transitioned" for e in events) == total
    assert events[-1]["event"] == "daemon_stopped"
