"""Database faults: SQLite locked by another process, PostgreSQL cut off and back. The daemon
waits, says degraded, and resumes without losing or inventing a transition."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from batchwatch.config import DatabaseSettings
from batchwatch.daemon import Daemon
from batchwatch.simulator.server import RunningSimulator
from tests.conftest import postgres_url
from tests.helpers import daemon_settings, get, upstream_job, wait_for
from tests.proxy import TcpProxy


def health(daemon: Daemon) -> tuple[int, dict[str, Any]]:
    response = requests.get(daemon.api_url + "/healthz", timeout=10)
    return response.status_code, response.json()


def recorded(daemon: Daemon, token: str, job_id: str) -> list[str]:
    body = get(daemon, token, f"/v1/batch/jobs/{job_id}/transitions").json()
    return [t["to_status"] for t in body.get("data", [])]


def truth(sim: RunningSimulator, job_id: str) -> list[str]:
    return [entry.status.value for entry in sim.simulation.history(job_id)]


def test_sqlite_locked_by_another_process_degrades_then_resumes(
    simulator: RunningSimulator, daemon: Daemon, token: str, tmp_path: Path
) -> None:
    job_id = upstream_job(simulator.url, sim_queue_seconds="1.5", sim_run_seconds="12")
    wait_for(lambda: recorded(daemon, token, job_id) == ["QUEUED"])
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "db.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(8)\n"
            "db.execute('COMMIT')\n",
            str(tmp_path / "bw.db"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    ) as locker:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        # The busy timeout (5 s) runs out: the cycle fails and says why.
        wait_for(lambda: health(daemon)[0] == 503, seconds=8)
        assert any("locked" in reason for reason in health(daemon)[1]["reasons"])
        locker.wait(timeout=20)
    wait_for(lambda: health(daemon)[0] == 200, seconds=15)
    wait_for(lambda: recorded(daemon, token, job_id)[-1:] == ["SUCCESS"], seconds=30)
    assert recorded(daemon, token, job_id) == truth(simulator, job_id)


@pytest.fixture
def pg_through_proxy() -> Iterator[tuple[str, TcpProxy]]:
    base = postgres_url()
    if base is None:
        pytest.skip("BATCHWATCH_TEST_DATABASE_URL is not set: no PostgreSQL to test against")
    url = make_url(base)
    proxy = TcpProxy(url.port or 5432)
    schema = f"bw_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    proxied = url.set(port=proxy.port, query={**url.query, "options": f"-csearch_path={schema}"})
    try:
        yield proxied.render_as_string(hide_password=False), proxy
    finally:
        proxy.cut()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.mark.postgres
def test_postgres_cut_off_and_back_degrades_then_resumes(
    simulator: RunningSimulator, tmp_path: Path, pg_through_proxy: tuple[str, TcpProxy]
) -> None:
    url, proxy = pg_through_proxy
    settings = daemon_settings(tmp_path, simulator.url)
    settings = replace(settings, database=DatabaseSettings(url=url))
    daemon = Daemon(settings, threading.Event())
    daemon.start()
    try:
        token = (tmp_path / "token").read_text().strip()
        job_id = upstream_job(simulator.url, sim_queue_seconds="1.5", sim_run_seconds="8")
        wait_for(lambda: recorded(daemon, token, job_id) == ["QUEUED"])
        proxy.cut()
        wait_for(lambda: health(daemon)[0] == 503, seconds=15)
        reasons = " ".join(health(daemon)[1]["reasons"])
        assert "database unavailable" in reasons
        api = get(daemon, token, f"/v1/batch/jobs/{job_id}")
        assert api.status_code == 503 and "database unavailable" in api.json()["detail"]
        time.sleep(2.5)  # the job moves on upstream meanwhile
        proxy.restore()
        wait_for(lambda: health(daemon)[0] == 200, seconds=20)
        wait_for(lambda: recorded(daemon, token, job_id)[-1:] == ["SUCCESS"], seconds=30)
        assert recorded(daemon, token, job_id) == truth(simulator, job_id)
    finally:
        daemon.close()
