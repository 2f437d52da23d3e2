"""Events in the database: the outbox, read as a feed, and its deliveries to each endpoint.

Events are inserted by ``outbox.insert_events`` inside the write transaction of what they report.
Each endpoint (a webhook URL, or a hook) has a cursor in ``endpoints``: ``fan_out`` turns
the events after it that the endpoint takes into pending ``deliveries`` rows and moves the
cursor, in one transaction, so an event is neither skipped nor queued twice across
restarts. A new endpoint starts at the newest event: it hears what happens from then on.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import func, insert, select, update

from batchwatch.events import Event, EventType
from batchwatch.store import Store
from batchwatch.store.codecs import decode_time
from batchwatch.store.outbox import EVENT_COLUMNS
from batchwatch.store.schema import deliveries, endpoints, events

_READ = (events.c.seq, *EVENT_COLUMNS)


def _event(row: Sequence[Any]) -> Event:
    seq, id_, type_, job_id, occurred_at, data = row
    at = decode_time(occurred_at)
    assert at is not None  # (NOT NULL)
    if isinstance(data, str):
        data = json.loads(data)
    return Event(id_, EventType(type_), job_id, at, data, seq)


def feed(
    store: Store, after: int, types: Collection[EventType] = (), limit: int = 100
) -> list[Event]:
    """The events after ``after`` (a ``seq``), oldest first, of ``types`` (all if empty)."""
    query = select(*_READ).where(events.c.seq > after).order_by(events.c.seq).limit(limit)
    if types:
        query = query.where(events.c.type.in_([t.value for t in types]))
    return [_event(row) for row in store._rows(query)]


def newest_seq(store: Store) -> int:
    found = store._rows(select(func.coalesce(func.max(events.c.seq), 0)))
    return int(found[0][0])


def by_id(store: Store, event_id: str) -> Event | None:
    found = store._rows(select(*_READ).where(events.c.id == event_id))
    return _event(found[0]) if found else None


# ---- endpoints and their deliveries --------------------------------------------------------


class Endpoint(NamedTuple):
    name: str
    cursor: int
    disabled_at: datetime | None
    disabled_reason: str | None


def register(store: Store, name: str) -> Endpoint:
    """The endpoint's row, made at the newest event when it is new."""
    with store.write() as w:
        row = w.conn.execute(select(endpoints).where(endpoints.c.name == name)).first()
        if row is None:
            newest = w.conn.execute(select(func.coalesce(func.max(events.c.seq), 0))).scalar()
            w.conn.execute(insert(endpoints).values(name=name, cursor=int(newest or 0)))
            return Endpoint(name, int(newest or 0), None, None)
    return Endpoint(row.name, row.cursor, decode_time(row.disabled_at), row.disabled_reason)


def fan_out(
    store: Store, name: str, types: Collection[EventType], now: datetime, limit: int = 5000
) -> int:
    """Queue the events after the endpoint's cursor that it takes (``types``; all if
    empty), at most ``limit`` events read; returns the cursor after them."""
    with store.write() as w:
        cursor = w.conn.execute(select(endpoints.c.cursor).where(endpoints.c.name == name)).scalar()
        query = (
            select(events.c.seq, events.c.type, events.c.job_id)
            .where(events.c.seq > (cursor or 0))
            .order_by(events.c.seq)
            .limit(limit)
        )
        read = w.conn.execute(query).all()
        if not read:
            return int(cursor or 0)
        wanted = {t.value for t in types}
        at = w.bulk.time(now)
        rows = [
            (name, seq, job_id, "pending", 0, at)
            for seq, type_, job_id in read
            if not wanted or type_ in wanted
        ]
        w.bulk.insert(deliveries, _NEW_DELIVERY, rows)
        w.conn.execute(update(endpoints).where(endpoints.c.name == name).values(cursor=read[-1][0]))
        return int(read[-1][0])


_NEW_DELIVERY = (
    deliveries.c.endpoint,
    deliveries.c.event_seq,
    deliveries.c.job_id,
    deliveries.c.state,
    deliveries.c.attempts,
    deliveries.c.next_at,
)


class Pending(NamedTuple):
    """A pending delivery as the dispatcher reads it, with its event."""

    event: Event
    attempts: int
    next_at: datetime
    first_attempt_at: datetime | None


def due(store: Store, name: str, now: datetime, limit: int) -> list[Pending]:
    """The endpoint's deliveries that may be sent at ``now``, in outbox order, with their
    events: pending, due, and with no earlier pending delivery of the same job waiting for
    its backoff (a job's later events wait behind its earlier ones, the other jobs' do not:
    1,000 jobs backing off must not hold up the rest)."""
    earlier = deliveries.alias("earlier")
    waiting = (
        select(earlier.c.event_seq)
        .where(
            earlier.c.endpoint == deliveries.c.endpoint,
            earlier.c.job_id == deliveries.c.job_id,
            earlier.c.event_seq < deliveries.c.event_seq,
            earlier.c.state == "pending",
            earlier.c.next_at > now,
        )
        .exists()
    )
    query = (
        select(
            *_READ,
            deliveries.c.attempts,
            deliveries.c.next_at,
            deliveries.c.first_attempt_at,
        )
        .select_from(deliveries.join(events, events.c.seq == deliveries.c.event_seq))
        .where(
            deliveries.c.endpoint == name,
            deliveries.c.state == "pending",
            deliveries.c.next_at <= now,
            ~waiting,
        )
        .order_by(deliveries.c.event_seq)
        .limit(limit)
    )
    found = []
    for row in store._rows(query):
        next_at = decode_time(row[7])
        assert next_at is not None  # (NOT NULL)
        found.append(Pending(_event(row[:6]), row[6], next_at, decode_time(row[8])))
    return found


def next_due(store: Store, name: str) -> datetime | None:
    """When the endpoint's earliest pending delivery is due (None: nothing pending)."""
    query = select(func.min(deliveries.c.next_at)).where(
        deliveries.c.endpoint == name, deliveries.c.state == "pending"
    )
    return decode_time(store._rows(query)[0][0])


class Outcome(NamedTuple):
    """How one attempt at a delivery ended, as the dispatcher records it."""

    event_seq: int
    state: str  # delivered | pending (to be tried again at next_at) | dead
    attempts: int
    next_at: datetime
    first_attempt_at: datetime
    status: int | None
    error: str | None


_OUTCOME_COLUMNS = (
    deliveries.c.state,
    deliveries.c.attempts,
    deliveries.c.next_at,
    deliveries.c.first_attempt_at,
    deliveries.c.last_attempt_at,
    deliveries.c.last_status,
    deliveries.c.last_error,
)
_DELIVERY_KEY = (deliveries.c.endpoint, deliveries.c.event_seq)


def record_outcomes(store: Store, name: str, outcomes: Iterable[Outcome], now: datetime) -> None:
    """Many attempts' outcomes in one transaction (a fast endpoint takes hundreds a
    second: one write each would be the bottleneck)."""
    with store.write() as w:
        time = w.bulk.time
        at = time(now)
        rows = [
            (
                o.state,
                o.attempts,
                time(o.next_at),
                time(o.first_attempt_at),
                at,
                o.status,
                o.error,
                name,
                o.event_seq,
            )
            for o in outcomes
        ]
        w.bulk.update_where(deliveries, _OUTCOME_COLUMNS, _DELIVERY_KEY, rows)


def disable(store: Store, name: str, reason: str, now: datetime) -> None:
    with store.write() as w:
        w.conn.execute(
            update(endpoints)
            .where(endpoints.c.name == name)
            .values(disabled_at=now, disabled_reason=reason)
        )


def redeliver(store: Store, event_id: str, now: datetime) -> int:
    """Make the event's deliveries pending again, due now, with their attempts reset;
    returns how many (0: no delivery of that event)."""
    with store.write() as w:
        seq = w.conn.execute(select(events.c.seq).where(events.c.id == event_id)).scalar()
        if seq is None:
            return 0
        result = w.conn.execute(
            update(deliveries)
            .where(deliveries.c.event_seq == seq)
            .values(state="pending", attempts=0, next_at=now, first_attempt_at=None)
        )
        return int(result.rowcount)


def delivery_rows(store: Store, state: str | None, limit: int) -> list[dict[str, Any]]:
    """Deliveries (of ``state``, or all), newest event first, as the API shows them."""
    query = (
        select(deliveries, events.c.id, events.c.type)
        .select_from(deliveries.join(events, events.c.seq == deliveries.c.event_seq))
        .order_by(deliveries.c.event_seq.desc())
        .limit(limit)
    )
    if state:
        query = query.where(deliveries.c.state == state)
    with store.reading() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def counts(store: Store) -> dict[str, dict[str, int]]:
    """Each endpoint's deliveries by state."""
    query = select(deliveries.c.endpoint, deliveries.c.state, func.count()).group_by(
        deliveries.c.endpoint, deliveries.c.state
    )
    found: dict[str, dict[str, int]] = {}
    for name, state, n in store._rows(query):
        found.setdefault(name, {"pending": 0, "delivered": 0, "dead": 0})[state] = int(n)
    return found


def endpoint_rows(store: Store) -> list[Endpoint]:
    return [
        Endpoint(r[0], r[1], decode_time(r[2]), r[3])
        for r in store._rows(select(endpoints).order_by(endpoints.c.name))
    ]
