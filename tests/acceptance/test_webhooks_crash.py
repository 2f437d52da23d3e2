"""Webhooks survive crashes: the daemon is SIGKILLed at random moments while 200 jobs progress
and a slow receiver takes their events. In the end every recorded event has reached it, each
signed, at least once (a send cut short by a kill is sent again), and each job's events first
arrived in the order they were recorded."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_webhooks import recorded_events, seed, wait_settled, webhook_toml
from tests.processes import DaemonProcess, Simulator, stop
from tests.receiver import Answer, Receiver, make_secret

pytestmark = pytest.mark.acceptance

JOBS = 200
KILLS = 5


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    simulator = Simulator(tmp_path)
    yield simulator
    stop(simulator.proc)


def test_sigkill_while_delivering_loses_no_event_and_keeps_each_jobs_order(
    tmp_path: Path, sim: Simulator
) -> None:
    rng = random.Random(20261203)
    secret_file = tmp_path / "webhook.secret"
    receiver = Receiver(make_secret(secret_file), answer=Answer(200, delay=0.05))
    seed(sim, JOBS, run_seconds=3, queue_seconds=0.5)
    daemon = DaemonProcess(tmp_path, sim.url, extra=webhook_toml(receiver.url, secret_file))
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.3, 2.0))
            daemon.kill()
            time.sleep(rng.uniform(0.0, 0.5))
            daemon.start()
        wait_settled(tmp_path, receiver, daemon, JOBS, 50)
    finally:
        stop(daemon.proc)
        receiver.close()

    events = recorded_events(tmp_path)
    received = list(receiver.received)
    first: dict[str, int] = {}  # webhook-id -> its first arrival's place
    for n, r in enumerate(received):
        first.setdefault(r.headers["webhook-id"], n)
    recorded_ids = {e["id"] for e in events}
    missing = recorded_ids - set(first)
    unknown = set(first) - recorded_ids
    duplicates = len(received) - len(first)
    print(
        f"\nevents recorded {len(events)}, requests received {len(received)},"
        f" duplicates {duplicates}, missing {len(missing)}, unknown {len(unknown)}"
    )
    assert len(events) >= 3 * JOBS  # at least QUEUED, RUNNING, SUCCESS and finished each
    assert missing == set()
    assert unknown == set()
    assert all(r.verified for r in received)
    assert all(r.status == 200 for r in received)
    # What arrived under an id is the event recorded under it.
    by_id = {e["id"]: e for e in events}
    for r in received:
        e = by_id[r.headers["webhook-id"]]
        assert (r.body["id"], r.body["seq"], r.body["type"], r.body["job_id"]) == (
            e["id"],
            e["seq"],
            e["type"],
            e["job_id"],
        )
    # Per job, first arrivals in seq order.
    per_job: dict[str, list[dict[str, object]]] = {}
    for e in events:
        per_job.setdefault(e["job_id"], []).append(e)
    out_of_order = [
        job for job, its in per_job.items() if sorted(its, key=lambda e: first[str(e["id"])]) != its
    ]
    assert out_of_order == []
    assert len(per_job) == JOBS
