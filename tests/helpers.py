"""Small helpers shared by the test modules."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, text

from batchwatch.config import (
    ApiSettings,
    DatabaseSettings,
    Settings,
    TrackingSettings,
)
from batchwatch.config_providers import MistralSettings
from batchwatch.daemon import Daemon
from batchwatch.models import Counters, JobStatus, RemoteJob
from batchwatch.providers.mistral.client import MistralClient
from batchwatch.providers.mistral.schemas import CreateBatchJobIn
from batchwatch.simulator.server import RunningSimulator

SIM_API_KEY = "sim-test-key"


def remote(status: str, job_id: str = "job-1", completed: int = 0) -> RemoteJob:
    return RemoteJob(
        id=job_id,
        status=JobStatus.parse(status),
        raw_status=status,
        endpoint="/v1/chat/completions",
        input_files=("file-1",),
        model="mistral-small-latest",
        agent_id=None,
        metadata=None,
        output_file=None,
        error_file=None,
        errors=(),
        created_at=1_795_000_000,
        started_at=None,
        completed_at=None,
        counters=Counters(total=10, completed=completed, succeeded=completed, failed=0),
    )


def daemon_settings(tmp_path: Path, upstream: str, **tracking: Any) -> Settings:
    """A daemon on a free port and its own SQLite file, polling every 0.2 s."""
    return Settings(
        mistral=MistralSettings(server_url=upstream, api_key=SIM_API_KEY, max_retries=1),
        tracking=TrackingSettings(poll_interval_seconds=0.2, **tracking),
        database=DatabaseSettings(url=f"sqlite:///{tmp_path / 'bw.db'}"),
        api=ApiSettings(port=0, token_file=tmp_path / "token"),
        state_dir=tmp_path,
    )


def get(daemon: Daemon, token: str, path: str, **params: Any) -> requests.Response:
    return requests.get(
        daemon.api_url + path,
        params=params,
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )


def wait_for(predicate: Callable[[], object], seconds: float = 10) -> None:
    """Poll ``predicate`` until it holds. An exception counts as "not yet" (a job not yet
    discovered answers 404) until the deadline, where the last one is raised."""
    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as exc:
            last = exc
        time.sleep(0.05)
    if last is not None:
        raise last
    raise AssertionError("condition not met in time")


def fresh_simulator(running: RunningSimulator) -> Iterator[RunningSimulator]:
    """A module's shared simulator for one test: no faults, request counts from zero."""
    running.simulation.faults.clear()
    running.simulation.reset_stats()
    yield running
    running.simulation.faults.clear()


def upstream_job(url: str, key: str = SIM_API_KEY, **directives: str) -> str:
    """Create a three-request inline job directly on the simulator (as another tool would)."""
    with MistralClient(url, key) as c:
        request = CreateBatchJobIn.model_validate(
            {
                "endpoint": "/v1/chat/completions",
                "model": "mistral-small-latest",
                "requests": ({"custom_id": "0", "body": {"messages": []}},) * 3,
                "metadata": {"team": "search", **directives},
            }
        )
        return c.create_job(request).id


@contextmanager
def pg_schema(base: str, prefix: str = "bw") -> Iterator[str]:
    """A fresh PostgreSQL schema in the database at ``base``, dropped afterwards; yields a
    URL whose search_path is that schema."""
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
