"""The poll scheduler on a real APScheduler: a cycle longer than the interval delays the
next one, and says so once in the daemon's own words, not as a library warning."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from batchwatch import logs
from batchwatch.health import Health
from batchwatch.scheduler import PollScheduler


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    out = io.StringIO()
    logs.configure("info", "json", stream=out)
    yield out
    logs.configure("warning", "json")  # what the rest of the suite runs with (conftest)


def test_an_overrunning_cycle_delays_the_next_without_a_library_warning(
    log_lines: io.StringIO,
) -> None:
    release, cycles = threading.Event(), []

    def slow_cycle() -> None:
        cycles.append(1)
        release.wait(5)  # far longer than the 0.05 s interval

    scheduler = PollScheduler(slow_cycle, 0.05, Health(0.05, datetime.now(UTC)))
    scheduler.start()
    try:
        for _ in range(100):
            if '"poll_delayed"' in log_lines.getvalue():
                break
            release.wait(0.05)
    finally:
        release.set()
        assert scheduler.shutdown(grace=5)
    events = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    assert "poll_delayed" in [e["event"] for e in events]
    assert not [e for e in events if e.get("logger", "").startswith("apscheduler")]
    assert len(cycles) == 1  # never two at once


def test_a_follower_ticks_without_polling_and_polls_at_once_when_it_leads() -> None:
    cycles: list[int] = []
    leading = threading.Event()
    started = datetime.now(UTC)
    health = Health(30.0, started)
    scheduler = PollScheduler(lambda: cycles.append(1), 30.0, health, leading=leading.is_set)
    scheduler.start()
    try:
        threading.Event().wait(0.5)  # the first tick runs at start
        assert cycles == []
        # It ticked as a follower: alive for the watchdog long after its start.
        assert health.poller_alive(started + timedelta(seconds=100), timedelta(seconds=100))
        leading.set()
        scheduler.poll_now()  # the interval is 30 s: only this makes a cycle now
        threading.Event().wait(1.0)
        assert cycles == [1]
        assert health.snapshot(datetime.now(UTC)).cycles == 1
    finally:
        scheduler.shutdown()
