"""The outbox on both databases: events written with what they report, fanned out to an
endpoint once, their outcomes, redelivery, and alerts raised once with their events."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from batchwatch.config_events import AlertSettings
from batchwatch.events import EventType
from batchwatch.store import Store
from batchwatch.store import events as stored
from batchwatch.store.alerts import run_check
from batchwatch.store.events import Outcome
from batchwatch.store.schema import jobs
from tests.integration.test_store import T0, record

LATER = T0 + timedelta(days=1)


def test_each_transition_is_an_event_and_an_end_also_finishes(store: Store) -> None:
    record(store, "QUEUED", job_id="a", at=T0)
    record(store, "RUNNING", "SUCCESS", job_id="a", at=T0 + timedelta(seconds=1))
    found = stored.feed(store, 0)
    assert [(e.seq, e.type) for e in found] == [
        (1, EventType.TRANSITIONED),
        (2, EventType.TRANSITIONED),
        (3, EventType.FINISHED),
    ]
    assert found[1].data["to_status"] == "SUCCESS" and found[1].data["from_status"] == "QUEUED"
    assert found[2].data == {
        "status": "SUCCESS",
        "requests": {"total": 10, "completed": 0, "succeeded": 0, "failed": 0},
    }
    assert found[2].occurred_at == T0 + timedelta(seconds=1)
    assert len({e.id for e in found}) == 3 and all(e.id.startswith("evt_") for e in found)
    assert [e.seq for e in stored.feed(store, 1, [EventType.FINISHED])] == [3]
    assert stored.by_id(store, found[0].id) == found[0]
    assert stored.newest_seq(store) == 3


def test_an_endpoint_hears_from_its_registration_on_each_event_once(store: Store) -> None:
    record(store, "QUEUED", job_id="a", at=T0)
    assert stored.register(store, "http://x/hook").cursor == 1  # the history before: not sent
    record(store, "RUNNING", job_id="a", at=T0 + timedelta(seconds=1))
    record(store, "RUNNING", "SUCCESS", job_id="b", at=T0 + timedelta(seconds=1))
    finished = [EventType.FINISHED]
    assert stored.fan_out(store, "http://x/hook", finished, T0) == 4
    assert stored.fan_out(store, "http://x/hook", finished, T0) == 4  # nothing new: same cursor
    rows = stored.due(store, "http://x/hook", LATER, 100)
    assert [(p.event.seq, p.event.type, p.attempts) for p in rows] == [(4, EventType.FINISHED, 0)]
    later = T0 + timedelta(minutes=1)
    failed = Outcome(4, "pending", 1, later, T0, 500, "HTTP 500")
    stored.record_outcomes(store, "http://x/hook", [failed], T0)
    again = stored.due(store, "http://x/hook", LATER, 100)
    assert [(p.attempts, p.next_at, p.first_attempt_at) for p in again] == [(1, later, T0)]
    stored.record_outcomes(
        store, "http://x/hook", [Outcome(4, "dead", 15, later, T0, 500, "x")], T0
    )
    assert stored.due(store, "http://x/hook", LATER, 100) == []
    assert stored.counts(store) == {"http://x/hook": {"pending": 0, "delivered": 0, "dead": 1}}
    assert stored.redeliver(store, rows[0].event.id, later) == 1
    back = stored.due(store, "http://x/hook", LATER, 100)
    assert [(p.attempts, p.first_attempt_at) for p in back] == [(0, None)]
    assert stored.redeliver(store, "evt_nothing", later) == 0
    stored.disable(store, "http://x/hook", "410 Gone", later)
    assert stored.register(store, "http://x/hook").disabled_reason == "410 Gone"


def test_a_stalled_job_is_raised_once_with_its_event(store: Store) -> None:
    record(store, "RUNNING", job_id="a", at=T0)
    alerts = AlertSettings(stall_minutes=10, queued_minutes=60, deadline_fraction=1.0)
    # (the job's creation time is fixed in the past: keep the deadline out of the way)
    with store.write() as w:
        w.conn.execute(
            update(jobs).values(created_at=int(T0.timestamp()), row_version=jobs.c.row_version + 1)
        )
    assert run_check(store, T0, alerts) == []
    raised = run_check(store, T0 + timedelta(minutes=10), alerts)
    assert [e.type for e in raised] == [EventType.STALLED]
    assert run_check(store, T0 + timedelta(minutes=20), alerts) == []
    assert [e.type for e in stored.feed(store, 1)] == [EventType.STALLED]
    # It moves: cleared; still for another 10 minutes: raised again.
    record(store, "SUCCESS", job_id="a", at=T0 + timedelta(minutes=21))
    assert run_check(store, T0 + timedelta(minutes=40), alerts) == []  # ended: not watched


def test_a_job_backing_off_holds_its_later_events_and_no_other_job(store: Store) -> None:
    stored.register(store, "h")
    record(store, "QUEUED", job_id="a", at=T0)
    record(store, "QUEUED", job_id="b", at=T0)
    record(store, "RUNNING", job_id="a", at=T0)
    record(store, "RUNNING", job_id="b", at=T0)
    stored.fan_out(store, "h", [], T0)
    assert [(p.event.job_id, p.event.seq) for p in stored.due(store, "h", T0, 10)] == [
        ("a", 1),
        ("b", 2),
        ("a", 3),
        ("b", 4),
    ]
    soon = T0 + timedelta(seconds=30)
    stored.record_outcomes(store, "h", [Outcome(1, "pending", 1, soon, T0, 500, "x")], T0)
    assert [p.event.seq for p in stored.due(store, "h", T0, 10)] == [2, 4]
    assert [p.event.seq for p in stored.due(store, "h", T0, 1)] == [2]  # (a limit of 1)
    assert stored.next_due(store, "h") == T0
    assert [p.event.seq for p in stored.due(store, "h", soon, 10)] == [1, 2, 3, 4]
