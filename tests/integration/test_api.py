"""The local API over real HTTP, from a daemon running in-process against the simulator."""

from __future__ import annotations

import stat
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from mistralai.client import Mistral

from batchwatch.config import (
    ApiSettings,
)
from batchwatch.daemon import Daemon
from batchwatch.errors import StartupError
from batchwatch.simulator.server import RunningSimulator
from batchwatch.tokens import ensure_token
from tests.helpers import SIM_API_KEY, daemon_settings, get, upstream_job, wait_for


def test_official_sdk_lists_and_gets_through_batchwatch(
    simulator: RunningSimulator, daemon: Daemon, token: str
) -> None:
    done = upstream_job(simulator.url, sim_run_seconds="0.2", sim_queue_seconds="0")
    running = upstream_job(simulator.url, sim_run_seconds="60", sim_queue_seconds="0")
    sdk = Mistral(api_key=token, server_url=daemon.api_url)
    wait_for(lambda: sdk.batch.jobs.get(job_id=done).status == "SUCCESS")
    listed = sdk.batch.jobs.list(status=["RUNNING"])
    assert [job.id for job in listed.data or []] == [running]
    assert listed.total == 1
    everything = sdk.batch.jobs.list()
    assert {job.id for job in everything.data or []} == {done, running}
    job = sdk.batch.jobs.get(job_id=done)
    assert job.completed_requests == job.total_requests == 3
    assert job.metadata == {"team": "search", "sim_run_seconds": "0.2", "sim_queue_seconds": "0"}
    by_metadata = sdk.batch.jobs.list(metadata={"team": "nobody"})
    assert by_metadata.total == 0


def test_history_routes_return_transitions_progress_and_feed(
    simulator: RunningSimulator, daemon: Daemon, token: str
) -> None:
    job_id = upstream_job(simulator.url, sim_run_seconds="0.6", sim_queue_seconds="0.2")
    wait_for(
        lambda: get(daemon, token, f"/v1/batch/jobs/{job_id}").json().get("status") == "SUCCESS"
    )
    body = get(daemon, token, f"/v1/batch/jobs/{job_id}/transitions").json()
    assert [(t["from_status"], t["to_status"]) for t in body["data"]] == [
        (None, "QUEUED"),
        ("QUEUED", "RUNNING"),
        ("RUNNING", "SUCCESS"),
    ]
    assert all(t["observed_at"].endswith("Z") for t in body["data"])
    samples = get(daemon, token, f"/v1/batch/jobs/{job_id}/progress").json()["data"]
    assert samples[-1]["completed_requests"] == 3
    feed = get(daemon, token, "/v1/transitions", after=0).json()
    assert [t["to_status"] for t in feed["data"] if t["job_id"] == job_id] == [
        "QUEUED",
        "RUNNING",
        "SUCCESS",
    ]
    after = get(daemon, token, "/v1/transitions", after=feed["next_cursor"]).json()
    assert after["data"] == [] and after["next_cursor"] == feed["next_cursor"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/batch/jobs/8a1c7c3e-0000-4000-8000-000000000000", 404),
        ("/v1/batch/jobs/8a1c7c3e-0000-4000-8000-000000000000/transitions", 404),
        ("/v1/batch/jobs/not-a-uuid", 422),
        ("/v1/batch/jobs/not-a-uuid/progress", 422),
        ("/v1/batch/jobs?status=SLEEPING", 422),
        ("/v1/batch/jobs?page=-1", 422),
        ("/v1/transitions?after=abc", 422),
    ],
)
def test_bad_ids_and_parameters_are_4xx_with_detail(
    daemon: Daemon, token: str, path: str, status: int
) -> None:
    response = get(daemon, token, path)
    assert response.status_code == status
    assert "detail" in response.json()


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic abc"])
def test_v1_routes_need_the_token(daemon: Daemon, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = requests.get(daemon.api_url + "/v1/batch/jobs", headers=headers, timeout=5)
    assert response.status_code == 401
    assert "token" in response.json()["detail"]


def test_healthz_and_openapi_need_no_token(daemon: Daemon) -> None:
    wait_for(lambda: requests.get(daemon.api_url + "/healthz", timeout=5).json()["cycles"] > 0)
    health = requests.get(daemon.api_url + "/healthz", timeout=5)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    spec = requests.get(daemon.api_url + "/openapi.json", timeout=5).json()
    for route in (
        "/v1/batch/jobs",
        "/v1/batch/jobs/{job_id}",
        "/v1/batch/jobs/{job_id}/transitions",
        "/v1/batch/jobs/{job_id}/progress",
        "/v1/transitions",
        "/healthz",
    ):
        assert route in spec["paths"], route


def test_unreachable_upstream_degrades_health_and_keeps_serving(tmp_path: Path) -> None:
    d = Daemon(daemon_settings(tmp_path, "http://127.0.0.1:9"), threading.Event())
    d.start()
    try:
        wait_for(lambda: requests.get(d.api_url + "/healthz", timeout=5).status_code == 503)
        body = requests.get(d.api_url + "/healthz", timeout=5).json()
        assert body["status"] == "degraded"
        assert "last poll failed" in body["reasons"][0]
        assert SIM_API_KEY not in str(body)
    finally:
        d.close()


def test_token_file_created_private_and_refused_when_readable(tmp_path: Path) -> None:
    path = tmp_path / "state" / "api-token"
    token = ensure_token(path)
    assert len(token) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_token(path) == token  # read back, not replaced
    path.chmod(0o644)
    with pytest.raises(StartupError, match="readable by other users"):
        ensure_token(path)


def test_port_in_use_is_a_clear_startup_error(tmp_path: Path, daemon: Daemon) -> None:
    port = int(daemon.api_url.rsplit(":", 1)[1])
    settings = daemon_settings(tmp_path / "second", "http://127.0.0.1:9")
    settings = replace(settings, api=ApiSettings(port=port, token_file=tmp_path / "t2"))
    with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{port}"):
        Daemon(settings, threading.Event()).start()
