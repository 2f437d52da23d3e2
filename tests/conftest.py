"""Shared fixtures: a real simulator on loopback, real database files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchwatch.simulator import RunningSimulator, SimulatorSettings, start_in_thread

SIM_API_KEY = "sim-test-key"


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
