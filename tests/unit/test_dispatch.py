"""The dispatcher's rules, pure: backoff, what an attempt makes of a delivery, and which
pending deliveries may be sent now (a job's events in order)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from batchwatch.delivery.dispatcher import (
    MAX_ATTEMPTS,
    backoff_seconds,
    into_lanes,
    outcome,
)
from batchwatch.delivery.senders import Attempt
from batchwatch.events import EventType, new_event
from batchwatch.store.events import Pending

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def pending(seq: int, job: str, *, due: timedelta = timedelta(0), attempts: int = 0) -> Pending:
    event = new_event(EventType.TRANSITIONED, job, T0, {})
    return Pending(replace(event, seq=seq), attempts, T0 + due, None if not attempts else T0)


@pytest.mark.parametrize(("attempts", "ceiling"), [(1, 1), (2, 2), (5, 16), (13, 3600), (14, 3600)])
def test_backoff_doubles_up_to_an_hour_with_jitter(attempts: int, ceiling: float) -> None:
    rng = random.Random(1)
    waits = [backoff_seconds(attempts, rng) for _ in range(200)]
    assert ceiling / 2 <= min(waits) and max(waits) <= ceiling
    assert max(waits) - min(waits) > ceiling / 10  # spread, not all the same


def test_a_failed_attempt_waits_at_least_the_retry_after() -> None:
    p = pending(1, "a")
    o = outcome(p, Attempt(False, 429, "HTTP 429", retry_after=120.0), T0, random.Random(1))
    assert o.state == "pending" and o.attempts == 1 and o.next_at >= T0 + timedelta(seconds=120)
    assert o.first_attempt_at == T0 and o.status == 429


def test_a_delivery_dies_after_its_last_attempt_or_a_day() -> None:
    rng = random.Random(1)
    last = pending(1, "a", attempts=MAX_ATTEMPTS - 1)
    assert outcome(last, Attempt(False, 500, "HTTP 500"), T0, rng).state == "dead"
    old = pending(2, "a", attempts=3)
    later = T0 + timedelta(hours=24)
    assert outcome(old, Attempt(False, None, "connection failed"), later, rng).state == "dead"
    assert outcome(old, Attempt(True, 204), later, rng).state == "delivered"


def test_each_job_s_deliveries_share_one_lane_in_order_and_lanes_are_capped() -> None:
    rows = [pending(n, "ab"[n % 2]) for n in range(1, 21)]
    lanes = into_lanes(rows, lanes=4, per_lane=3)
    assert all(len(lane) <= 3 for lane in lanes)
    for lane in lanes:
        for job in "ab":
            seqs = [p.event.seq or 0 for p in lane if p.event.job_id == job]
            assert seqs == sorted(seqs)
            assert not seqs or seqs[0] == (2 if job == "a" else 1)  # each job's first
