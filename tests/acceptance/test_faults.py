"""The fault suite: the real daemon against the real simulator while the simulator injects
every upstream fault, one kind at a time and then all at once. Afterwards every job's
recorded history must be exactly the simulator's truth (a status may only be missing if it
came and went inside an outage), no request may have broken a Retry-After window, and the
daemon must be healthy again by itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchwatch.providers.mistral.client import MistralClient
from batchwatch.providers.mistral.schemas import CreateBatchJobIn
from tests.processes import (
    API_KEY,
    DaemonProcess,
    Simulator,
    cycle_gaps,
    is_subsequence,
    stop,
    unobserved,
    wait_until,
)

pytestmark = pytest.mark.acceptance

SINGLE_FAULTS = [
    "429",
    "500",
    "502",
    "503",
    "504",
    "stall",
    "reset",
    "truncate",
    "garbage",
    "missing_field",
    "unknown_status",
]
PHASE_SECONDS = 1.5
RETRY_AFTER = 1.0
# Requests already on the wire when a 429/503 came back may land just after it.
IN_FLIGHT = 0.05


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Simulator]:
    sim = Simulator(
        tmp_path,
        "--queue-seconds",
        "2",
        "--run-seconds",
        "6",
        "--cancel-seconds",
        "2",
        "--stall-seconds",
        "1.5",
    )
    yield sim
    stop(sim.proc)


def rule(fault: str, rate: float) -> dict[str, Any]:
    return {"fault": fault, "rate": rate, "retry_after": RETRY_AFTER}


def create_jobs(sim: Simulator, count: int) -> list[str]:
    client = MistralClient(sim.url, API_KEY)
    outcomes = ["SUCCESS", "FAILED", "TIMEOUT_EXCEEDED"]
    ids = []
    for n in range(count):
        directives = {
            "sim_outcome": outcomes[n % 3],
            "sim_queue_seconds": f"{1 + n % 7}",
            "sim_run_seconds": f"{6 + 2 * n}",
        }
        request = CreateBatchJobIn.model_validate(
            {
                "endpoint": "/v1/chat/completions",
                "model": "m",
                "requests": ({"body": {}},) * 30,
                "metadata": directives,
            }
        )
        ids.append(client.create_job(request).id)
    return ids


def retry_after_breaches(log: list[dict[str, Any]]) -> list[str]:
    """Requests that reached the simulator inside a Retry-After window it had announced."""
    windows = [(r["at"], r["at"] + RETRY_AFTER) for r in log if r["fault"] in ("429", "503")]
    return [
        f"{r['route']} at +{r['at'] - start:.3f}s"
        for r in log
        for start, end in windows
        if start + IN_FLIGHT < r["at"] < end - IN_FLIGHT
    ]


def test_every_fault_survived_without_a_false_record(tmp_path: Path, upstream: Simulator) -> None:
    began = time.time()
    ids = create_jobs(upstream, 12)
    daemon = DaemonProcess(
        tmp_path, upstream.url, poll=0.2, mistral_extra="timeout_seconds = 1\nmax_retries = 2\n"
    )
    blind: list[tuple[float, float]] = [(began, time.time())]
    degraded_seen = False
    try:
        for phase, fault in enumerate(SINGLE_FAULTS):
            # The phase's first request always meets its fault; then a third of them do, on
            # dice of the phase's own (reseeded alike, every phase would open on the same
            # draws: seed 7 starts with two faults in a row at this rate).
            upstream.faults([rule(fault, 1.0) | {"times": 1}, rule(fault, 0.35)], seed=phase)
            time.sleep(PHASE_SECONDS)
        upstream.faults([rule(fault, 0.06) for fault in SINGLE_FAULTS])
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            degraded_seen |= daemon.health()[0] == 503
            time.sleep(0.2)
        # A full outage: every request fails for a while, then the faults stop.
        outage_start = time.time()
        upstream.faults([rule("503", 1.0)])
        wait_until(lambda: daemon.health()[0] == 503, 15, "healthz to say degraded")
        status, body = daemon.health()
        assert status == 503 and body["reasons"], body
        degraded_seen = True
        time.sleep(1.0)
        upstream.faults([])
        blind.append((outage_start, time.time()))
        wait_until(lambda: daemon.health()[0] == 200, 30, "healthz to recover by itself")
        wait_until(lambda: daemon.all_ended(len(ids)), 90, "every job to end")
    finally:
        stop(daemon.proc)
    # Cycles that failed under the faults are blind time too: the daemon could not look.
    # So is the time from the daemon's start to its first cycle that read everything.
    blind += cycle_gaps(daemon.log, longer_than=1.0, since=blind[0][1])
    log = upstream.request_log()
    injected = sum(1 for r in log if r["fault"])

    assert degraded_seen
    kinds = {r["fault"] for r in log if r["fault"]}
    assert kinds >= set(SINGLE_FAULTS), f"never injected: {set(SINGLE_FAULTS) - kinds}"
    assert injected > 30, f"only {injected} faults were injected"
    assert retry_after_breaches(log) == []
    checked = 0
    for job_id in ids:
        truth = upstream.truth(job_id)
        recorded = [t["to_status"] for t in daemon_history(tmp_path, job_id)]
        assert is_subsequence(recorded, [s for s, _ in truth]), (recorded, truth)
        assert recorded[-1] == truth[-1][0]
        assert unobserved(truth, recorded, blind) == [], (job_id, recorded, truth)
        checked += len(recorded)
    assert checked >= 2 * len(ids)
    print(
        f"\nfault suite: {injected} faults injected, {len(log)} requests, "
        f"{checked} transitions checked, 0 mismatches"
    )
    log_text = daemon.log.read_text()
    assert "Traceback" not in log_text
    assert API_KEY not in log_text


def daemon_history(tmp_path: Path, job_id: str) -> list[dict[str, Any]]:
    """The recorded transitions, read from the database file the daemon left."""
    import sqlite3

    with sqlite3.connect(tmp_path / "bw.db") as db:
        rows = db.execute(
            "SELECT seq, to_status FROM transitions WHERE job_id = ? ORDER BY seq", (job_id,)
        ).fetchall()
    assert [seq for seq, _ in rows] == list(range(1, len(rows) + 1))
    return [{"to_status": status} for _, status in rows]
