"""Stuck-job alerts end to end: a daemon in this process against the simulator, its alert
check raising ``job.stalled`` and ``job.deadline_near`` once each, into the outbox."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import requests

from batchwatch.config_events import AlertSettings
from batchwatch.daemon import Daemon
from batchwatch.events import EventType
from batchwatch.simulator.server import RunningSimulator
from batchwatch.store import Store
from batchwatch.store import events as stored
from tests.helpers import daemon_settings, wait_for


def test_a_job_queued_too_long_and_near_its_deadline_is_raised_once(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    # Queued for more than 1.2 s is stalled; 0.005% of the default 24 hours is 4.3 s.
    alerts = AlertSettings(stall_minutes=60, queued_minutes=0.02, deadline_fraction=0.00005)
    daemon = Daemon(
        replace(daemon_settings(tmp_path, simulator.url), alerts=alerts), threading.Event()
    )
    daemon.start()
    store = Store(f"sqlite:///{tmp_path / 'bw.db'}")
    try:
        seeded = requests.post(
            f"{simulator.url}/_sim/jobs/bulk",
            json={"count": 1, "total_requests": 10, "metadata": {"sim_queue_seconds": "60"}},
            timeout=5,
        )
        (job_id,) = seeded.json()["ids"]

        def raised() -> list[EventType]:
            return [e.type for e in stored.feed(store, 0) if e.type is not EventType.TRANSITIONED]

        wait_for(lambda: EventType.DEADLINE_NEAR in raised(), 20)
        # Checked many times since (every 0.3 s here): each alert is still there once.
        wait_for(lambda: len(raised()) == 2, 5)
        threading.Event().wait(1.0)
        assert sorted(raised()) == [EventType.DEADLINE_NEAR, EventType.STALLED]
        stalled, near = (
            next(e for e in stored.feed(store, 0) if e.type is kind)
            for kind in (EventType.STALLED, EventType.DEADLINE_NEAR)
        )
        assert stalled.job_id == job_id and stalled.data["reason"] == "queued"
        assert near.data["timeout_hours"] == 24 and near.data["requests_left"] == 10
    finally:
        daemon.close()
        store.close()
