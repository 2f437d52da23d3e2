"""Shared fixtures: a real simulator on loopback, real database files."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchwatch import logs
from batchwatch.daemon import Daemon
from batchwatch.simulator.server import RunningSimulator, start_in_thread
from batchwatch.simulator.settings import SimulatorSettings
from batchwatch.store import Store
from tests.helpers import SIM_API_KEY, daemon_settings, pg_schema


@pytest.fixture
def daemon(tmp_path: Path, simulator: RunningSimulator) -> Iterator[Daemon]:
    """A daemon in this process, against the simulator, on a free port."""
    d = Daemon(daemon_settings(tmp_path, simulator.url), threading.Event())
    d.start()
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def config(tmp_path: Path, daemon: Daemon) -> str:
    """A config file that points the CLI at the in-process daemon."""
    port = daemon.api_url.rsplit(":", 1)[1]
    path = tmp_path / "cli.toml"
    path.write_text(f'[api]\nport = {port}\ntoken_file = "{tmp_path / "token"}"\n')
    return str(path)


@pytest.fixture
def token(daemon: Daemon, tmp_path: Path) -> str:
    return (tmp_path / "token").read_text().strip()


@pytest.fixture(autouse=True)
def _quiet_logs() -> None:
    """Daemons started in-process log warnings only, to stderr, as a CLI run would. Set
    before every test: one that runs `migrate` or `serve` in-process configures info, and a
    daemon of the next test would then write its cycles into that test's captured stderr."""
    logs.configure("warning", "json")


@pytest.fixture
def simulator() -> Iterator[RunningSimulator]:
    """The Mistral simulator on a free loopback port, with fast job lifecycles."""
    settings = SimulatorSettings(
        api_key=SIM_API_KEY, queue_seconds=0.3, run_seconds=1.0, cancel_seconds=0.3
    )
    running = start_in_thread(settings, host="127.0.0.1", port=0)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'batchwatch.db'}"


def postgres_url() -> str | None:
    return os.environ.get("BATCHWATCH_TEST_DATABASE_URL") or None


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A fresh PostgreSQL schema per test, dropped afterwards."""
    base = postgres_url()
    if base is None:
        pytest.skip("BATCHWATCH_TEST_DATABASE_URL is not set: no PostgreSQL to test against")
    with pg_schema(base) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[Store]:
    """A migrated store, once on a SQLite file and once in a fresh PostgreSQL schema."""
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_schema_url")
    s = Store(url)
    s.migrate()
    try:
        yield s
    finally:
        s.close()
