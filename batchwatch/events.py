"""Events: what batchwatch tells people, as records and as the one JSON shape every consumer
sees (the feed, the stream, webhooks and hooks).

An event is recorded by the store in the same transaction as what it reports (a transition,
ready results, a raised alert): the ``events`` table is an outbox, so there is never an event
without its cause nor a cause without its event. This module is pure: it decides which
events a change makes and what they say; ``store/events.py`` writes and reads them.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from batchwatch.models import TERMINAL_STATUSES, RemoteJob, Transition


class EventType(StrEnum):
    TRANSITIONED = "job.transitioned"
    FINISHED = "job.finished"
    RESULTS_READY = "job.results_ready"
    STALLED = "job.stalled"
    DEADLINE_NEAR = "job.deadline_near"


EVENT_TYPES = tuple(t.value for t in EventType)


@dataclass(frozen=True, slots=True)
class Event:
    """An event; ``seq`` is its place in the outbox (None until it is stored)."""

    id: str
    type: EventType
    job_id: str
    occurred_at: datetime
    data: Mapping[str, Any]
    seq: int | None = None


def new_event(
    type: EventType, job_id: str, occurred_at: datetime, data: Mapping[str, Any]
) -> Event:
    # A random id (not the outbox's seq: a receiver deduplicates by it, and a database
    # recreated from scratch would number its events from 1 again). token_hex, not uuid4:
    # 0.6 µs against 2.8 (timeit), and a cycle that ends 10,000 jobs makes 20,000 events.
    return Event(f"evt_{secrets.token_hex(16)}", type, job_id, occurred_at, data)


def transition_data(t: Transition) -> dict[str, Any]:
    """A transition as events and the API show it (the API adds its feed ``id``)."""
    return {
        "job_id": t.job_id,
        "seq": t.seq,
        "from_status": t.from_status.value if t.from_status else None,
        "to_status": t.to_status.value,
        # As the provider sent them: a change the common statuses do not show (OpenAI's
        # in_progress → finalizing, both RUNNING) is still a transition.
        "from_provider_status": t.from_provider_status,
        "to_provider_status": t.to_provider_status,
        "observed_at": t.observed_at,
        "last_seen_before": t.last_seen_before,
        "source": t.source,
    }


def request_counts(job: RemoteJob) -> dict[str, int]:
    c = job.counters
    return {
        "total": c.total,
        "completed": c.completed,
        "succeeded": c.succeeded,
        "failed": c.failed,
    }


def for_transitions(recorded: Iterable[Transition], jobs: Mapping[str, RemoteJob]) -> list[Event]:
    """The events of recorded transitions: each one ``job.transitioned``; one that ends the
    job also ``job.finished``, with the status and the request counts ``jobs`` give."""
    found: list[Event] = []
    for t in recorded:
        found.append(new_event(EventType.TRANSITIONED, t.job_id, t.observed_at, transition_data(t)))
        if t.to_status in TERMINAL_STATUSES:
            job = jobs.get(t.job_id)
            data: dict[str, Any] = {"status": t.to_status.value}
            if job is not None:
                data["requests"] = request_counts(job)
            found.append(new_event(EventType.FINISHED, t.job_id, t.observed_at, data))
    return found


def event_body(e: Event) -> dict[str, Any]:
    """The one JSON shape of an event: the feed's, the stream's, a webhook's, a hook's."""
    return {
        "id": e.id,
        "seq": e.seq,
        "type": e.type.value,
        "job_id": e.job_id,
        "occurred_at": e.occurred_at,
        "data": dict(e.data),
    }
