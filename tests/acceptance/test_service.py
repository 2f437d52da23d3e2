"""Running as a service: the systemd notify protocol, /metrics, /healthz in both states, and
a SIGTERM in the middle of a stuck poll cycle."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from batchwatch.daemon import Daemon
from batchwatch.simulator.faults import FaultRule
from batchwatch.simulator.server import RunningSimulator
from tests.helpers import upstream_job, wait_for
from tests.processes import API_KEY, DaemonProcess, Simulator, stop


def scrape(daemon: Daemon) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = requests.get(daemon.api_url + "/metrics", timeout=5).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_after_a_few_polls(simulator: RunningSimulator, daemon: Daemon, token: str) -> None:
    simulator.simulation.faults.set(
        [FaultRule("503", times=1, retry_after=0, route="GET /v1/batch/jobs")]
    )
    job_id = upstream_job(simulator.url, sim_queue_seconds="1", sim_run_seconds="1")
    wait_for(
        lambda: (
            requests.get(
                f"{daemon.api_url}/v1/batch/jobs/{job_id}",
                timeout=5,
                headers={"Authorization": f"Bearer {token}"},
            )
            .json()
            .get("status")
            == "SUCCESS"
        )
    )
    samples = scrape(daemon)
    assert value(samples, "batchwatch_jobs", status="SUCCESS") == 1
    for status in ("QUEUED", "RUNNING", "SUCCESS"):
        assert (
            value(samples, "batchwatch_transitions_recorded_total", to_status=status, source="poll")
            == 1
        )
    assert (
        value(samples, "batchwatch_upstream_requests_total", operation="list_jobs", code="200") >= 3
    )
    assert (
        value(samples, "batchwatch_upstream_requests_total", operation="list_jobs", code="503") == 0
    )  # retried inside the call
    assert value(samples, "batchwatch_upstream_retries_total", reason="503") == 1
    assert value(samples, "batchwatch_poll_cycles_total", result="ok") >= 3
    assert value(samples, "batchwatch_poll_duration_seconds_count") >= 3
    assert value(samples, "batchwatch_last_successful_poll_timestamp_seconds") > time.time() - 60
    assert (
        value(
            samples,
            "batchwatch_api_requests_total",
            method="GET",
            route="/v1/batch/jobs/{job_id}",
            code="200",
        )
        >= 1
    )
    # no raw job id ever becomes a label
    assert job_id not in requests.get(daemon.api_url + "/metrics", timeout=5).text


def test_healthz_ok_then_degraded_then_ok(simulator: RunningSimulator, daemon: Daemon) -> None:
    wait_for(lambda: requests.get(daemon.api_url + "/healthz", timeout=5).status_code == 200)
    simulator.simulation.faults.set([FaultRule("500")])
    wait_for(lambda: requests.get(daemon.api_url + "/healthz", timeout=5).status_code == 503)
    body = requests.get(daemon.api_url + "/healthz", timeout=5).json()
    assert body["status"] == "degraded"
    assert "HTTP 500" in body["reasons"][0]
    simulator.simulation.faults.clear()
    wait_for(lambda: requests.get(daemon.api_url + "/healthz", timeout=5).status_code == 200)


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    yield sock, path
    sock.close()


def messages(sock: socket.socket, seconds: float) -> list[str]:
    got: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            got.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
    return got


@pytest.mark.acceptance
def test_notify_ready_watchdog_then_stopping(
    tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, path = notify_socket
    sim = Simulator(tmp_path)
    os.environ["NOTIFY_SOCKET"] = path
    os.environ["WATCHDOG_USEC"] = "600000"  # 0.6 s: a heartbeat every 0.2 s
    try:
        daemon = DaemonProcess(tmp_path, sim.url, poll=0.2)
    finally:
        del os.environ["NOTIFY_SOCKET"], os.environ["WATCHDOG_USEC"]
    try:
        early = messages(sock, 1.5)
        assert early[0].startswith("READY=1\nSTATUS=listening on http://127.0.0.1:")
        beats = [m for m in early if m.startswith("WATCHDOG=1")]
        assert len(beats) >= 3
        assert any("jobs tracked" in m and "last poll" in m for m in beats)
        daemon.proc.send_signal(signal.SIGTERM)
        late = messages(sock, 1.0)
        assert "STOPPING=1\nSTATUS=stopping" in late
        assert daemon.proc.wait(timeout=10) == 0
    finally:
        stop(daemon.proc)
        stop(sim.proc)


@pytest.mark.acceptance
def test_sigterm_during_a_stuck_cycle_exits_zero_within_ten_seconds(tmp_path: Path) -> None:
    sim = Simulator(tmp_path, "--stall-seconds", "60")
    daemon = DaemonProcess(tmp_path, sim.url, poll=0.2, mistral_extra="timeout_seconds = 120\n")
    try:
        upstream_job(sim.url, API_KEY, sim_run_seconds="60")
        wait_for(lambda: daemon.health()[1]["cycles"] >= 1)
        sim.faults([{"fault": "stall", "route": "GET /v1/batch/jobs"}])
        time.sleep(1.0)  # a cycle is now waiting on a response that takes a minute
        started = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=12) == 0
        assert time.monotonic() - started < 10
    finally:
        stop(daemon.proc)
        stop(sim.proc)
    with sqlite3.connect(tmp_path / "bw.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        seqs = db.execute("SELECT job_id, seq FROM transitions ORDER BY job_id, seq").fetchall()
    assert len(seqs) == len(set(seqs))
    assert "poll_abandoned" in daemon.log.read_text()


@pytest.mark.acceptance
def test_every_line_is_json_while_the_upstream_is_down(tmp_path: Path) -> None:
    """urllib3's retry warnings, uvicorn's and the daemon's own events: one JSON format."""
    daemon = DaemonProcess(tmp_path, "http://127.0.0.1:9", poll=0.2, mistral_extra=RETRY_FAST)
    try:
        wait_for(lambda: daemon.health()[1]["cycles"] >= 2)
        assert daemon.terminate() == 0
    finally:
        stop(daemon.proc)
    lines = daemon.log.read_text().splitlines()
    events = [json.loads(line) for line in lines]  # a line that is not JSON fails here
    assert all(isinstance(event, dict) and "level" in event for event in events)
    retries = [e for e in events if e.get("logger", "").startswith("urllib3")]
    assert retries and all(e["level"] == "warning" for e in retries)
    assert any(e["event"].startswith("Retrying (") for e in retries)
    assert any(e["event"] == "poll_failed" for e in events)


#: Two quick retries of each request, so a failed cycle takes well under a second.
RETRY_FAST = "max_retries = 2\ntimeout_seconds = 2\n"
