"""Crash safety: the daemon is SIGKILLed at random moments while jobs progress and started
again on the same database. Nothing recorded is lost, nothing is recorded twice, and every
status change is there except those that came and went while no daemon was running."""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchwatch.providers.mistral.client import MistralClient
from batchwatch.providers.mistral.schemas import CreateBatchJobIn
from tests.processes import (
    API_KEY,
    DaemonProcess,
    Simulator,
    is_subsequence,
    stop,
    unobserved,
    wait_until,
)

pytestmark = pytest.mark.acceptance

KILLS = 6
JOBS = 12


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Simulator]:
    sim = Simulator(tmp_path, "--queue-seconds", "1", "--run-seconds", "3", "--cancel-seconds", "1")
    yield sim
    stop(sim.proc)


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    tmp_path: Path, upstream: Simulator
) -> None:
    rng = random.Random(20261126)
    began = time.time()
    client = MistralClient(upstream.url, API_KEY)
    outcomes = ["SUCCESS", "FAILED", "TIMEOUT_EXCEEDED"]
    ids = []
    for n in range(JOBS):
        directives = {
            "sim_outcome": outcomes[n % 3],
            "sim_run_seconds": f"{2 + n % 5}",
            "sim_queue_seconds": f"{0.5 + (n % 4) * 0.7:.1f}",
        }
        if n == JOBS - 1:  # the one cancelled half-way
            directives = {"sim_run_seconds": "60", "sim_queue_seconds": "0.5"}
        request = CreateBatchJobIn.model_validate(
            {
                "endpoint": "/v1/chat/completions",
                "model": "m",
                "requests": ({"body": {}},) * 20,
                "metadata": directives,
            }
        )
        ids.append(client.create_job(request).id)

    daemon = DaemonProcess(tmp_path, upstream.url, poll=0.1)
    blind: list[tuple[float, float]] = [(began, time.time())]  # before the first start
    try:
        for n in range(KILLS):
            time.sleep(rng.uniform(0.2, 1.2))
            if n == 2:
                client.cancel_job(ids[-1])  # a cancellation in the middle of it all
            down = time.time()
            daemon.kill()
            time.sleep(rng.uniform(0.0, 0.8))
            daemon.start()
            blind.append((down, time.time()))
        wait_until(lambda: daemon.all_ended(JOBS), 60, "every job to end")
        assert daemon.health()[0] == 200
    finally:
        stop(daemon.proc)

    with sqlite3.connect(tmp_path / "bw.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        duplicates = db.execute(
            "SELECT job_id, to_status, COUNT(*) FROM transitions "
            "GROUP BY job_id, to_status HAVING COUNT(*) > 1"
        ).fetchall()
        assert duplicates == []
        transitions = db.execute(
            "SELECT job_id, seq, to_status FROM transitions ORDER BY job_id, seq"
        ).fetchall()
    history: dict[str, list[str]] = {}
    for job_id, seq, to_status in transitions:
        history.setdefault(job_id, []).append(to_status)
        assert seq == len(history[job_id])  # 1..n without gaps
    for job_id in ids:
        truth = upstream.truth(job_id)
        recorded = history[job_id]
        assert is_subsequence(recorded, [s for s, _ in truth]), (recorded, truth)
        assert recorded[-1] == truth[-1][0]
        assert unobserved(truth, recorded, blind) == [], (job_id, recorded, truth, blind)
