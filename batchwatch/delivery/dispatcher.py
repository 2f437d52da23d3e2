"""One thread per endpoint takes the outbox's events to it, at least once, in order per job.

A round: queue the new events the endpoint takes (``store.events.fan_out``); read its
pending deliveries in outbox order; send those that are due, on a few lanes at once (each
job on one lane, its events one after another: a job's event is never sent before its
earlier one was delivered or given up); record every outcome in one transaction. A failed
send waits with exponential backoff and jitter; a ``Retry-After`` holds every send to the
endpoint; 15 attempts or 24 hours make a delivery dead; a 410 Gone disables the endpoint.

A slow or dead endpoint only slows its own thread: the poller, the API and the other
endpoints never wait for it. A crash between a send and its record sends it again (at
least once); the receiver deduplicates by ``webhook-id``.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

from batchwatch.delivery.senders import Attempt, Sender
from batchwatch.errors import LeaseLost, StoreUnavailable
from batchwatch.events import EventType, event_body
from batchwatch.logs import get_logger
from batchwatch.store import Store
from batchwatch.store import events as stored
from batchwatch.store.events import Outcome, Pending

log = get_logger("batchwatch.delivery")

MAX_ATTEMPTS = 15
MAX_AGE = timedelta(hours=24)
#: The longest wait between two attempts at one delivery.
MAX_BACKOFF_SECONDS = 3600.0
#: How long an idle dispatcher sleeps at most (events recorded by this process wake it at
#: once, ``Store.on_events``).
IDLE_SECONDS = 2.0
#: Sends per lane in one round, then their outcomes are recorded. Uncapped, a round sent
#: every due delivery (up to 1,000) first: 5 SIGKILLs during 800 deliveries to a
#: receiver answering in 50 ms resent 524-554 of them; capped at 8, 159
#: (tests/acceptance/test_webhooks_crash.py, run with -s).
LANE_ROWS = 8


def backoff_seconds(attempts: int, rng: random.Random) -> float:
    """The wait after ``attempts`` failed attempts: 1 s doubled each time up to an hour,
    with jitter (between half and all of it), so retries of many deliveries spread out."""
    ceiling = min(MAX_BACKOFF_SECONDS, 2.0 ** (attempts - 1))
    return ceiling * rng.uniform(0.5, 1.0)


def outcome(p: Pending, attempt: Attempt, now: datetime, rng: random.Random) -> Outcome:
    """What an attempt makes of a delivery."""
    assert p.event.seq is not None
    attempts = p.attempts + 1
    first = p.first_attempt_at or now
    if attempt.ok:
        return Outcome(p.event.seq, "delivered", attempts, now, first, attempt.status, None)
    if attempts >= MAX_ATTEMPTS or now - first >= MAX_AGE:
        return Outcome(p.event.seq, "dead", attempts, now, first, attempt.status, attempt.error)
    delay = max(backoff_seconds(attempts, rng), attempt.retry_after or 0.0)
    later = now + timedelta(seconds=delay)
    return Outcome(p.event.seq, "pending", attempts, later, first, attempt.status, attempt.error)


def into_lanes(rows: Sequence[Pending], lanes: int, per_lane: int) -> list[list[Pending]]:
    """Deliveries (due, in outbox order: ``store.events.due`` chose them) split into at
    most ``lanes`` lanes of at most ``per_lane``, each job's on one lane in order."""
    out: list[list[Pending]] = [[] for _ in range(lanes)]
    for p in rows:
        out[hash(p.event.job_id) % lanes].append(p)
    return [lane[:per_lane] for lane in out if lane]


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str  # the database's key: a webhook's URL, a hook's command
    kind: str  # webhook | hook
    types: Collection[EventType]
    sender: Sender
    lanes: int
    #: How logs, metrics and /healthz name it: ``webhooks[0] (https://host)``. Never the
    #: URL's path, which often holds a credential (Slack's do).
    label: str


class Dispatcher(threading.Thread):
    def __init__(
        self,
        store: Store,
        endpoint: Endpoint,
        stop: threading.Event,
        *,
        now: Callable[[], datetime],
        on_outcome: Callable[[str, str], None] = lambda name, result: None,
        on_disabled: Callable[[str, str], None] = lambda name, reason: None,
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        """``leading`` (team mode): whether this daemon leads; only the leader delivers."""
        super().__init__(name=f"deliver-{endpoint.kind}", daemon=True)
        self._leading = leading
        self.store = store
        self.endpoint = endpoint
        self._stop_event = stop
        self._now = now
        self._on_outcome = on_outcome
        self._on_disabled = on_disabled
        self.wake = threading.Event()
        self._rng = random.Random()
        self._pool = ThreadPoolExecutor(endpoint.lanes, thread_name_prefix="deliver-lane")
        self._held_until = 0.0  # time.monotonic(): a Retry-After holds every send until then
        self._gone: Attempt | None = None
        self.disabled = False
        self._cursor = 0
        self._registered: stored.Endpoint | None = None

    def start(self) -> None:
        # Registered here, in the caller's thread, not in ``run``: the daemon starts the
        # scheduler right after, and a new endpoint starts at the newest event; registered
        # after the first poll had recorded its events, it would never send them.
        try:
            # Any daemon of a team registers the endpoints it is configured with.
            self._registered = stored.register(self.store.unfenced(), self.endpoint.name)
        except StoreUnavailable as exc:
            log.error("delivery_not_started", endpoint=self.endpoint.label, error=str(exc))
            return
        super().start()

    def run(self) -> None:
        assert self._registered is not None  # (``start`` registered it)
        self._adopt(self._registered)
        led = True
        while not self._stop_event.is_set() and not self.disabled:
            try:
                leading = self._leading()
                if leading and not led:
                    # Leading again: the endpoint as the last leader left it.
                    self._adopt(stored.register(self.store.unfenced(), self.endpoint.name))
                led = leading
                pause = self._round() if leading and not self.disabled else IDLE_SECONDS
            except LeaseLost:
                pause = IDLE_SECONDS  # another daemon leads and delivers (these again)
            except StoreUnavailable as exc:
                log.warning("delivery_round_failed", endpoint=self.endpoint.label, error=str(exc))
                pause = IDLE_SECONDS
            if pause > 0:
                self.wake.wait(pause)
                self.wake.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.endpoint.sender.close()

    def _adopt(self, row: stored.Endpoint) -> None:
        """Go on from the endpoint's stored row: its cursor, and whether a 410 disabled it."""
        self._cursor = row.cursor
        if row.disabled_at is not None:
            self._disable(row.disabled_reason or "disabled", record=False)

    def _round(self) -> float:
        """One round; returns how long to wait before the next (0: more is due now)."""
        held = self._held_until - time.monotonic()
        if held > 0:
            return held
        if stored.newest_seq(self.store) > self._cursor:
            self._cursor = stored.fan_out(
                self.store, self.endpoint.name, self.endpoint.types, self._now()
            )
        now = self._now()
        # Twice what the lanes take, as jobs do not spread evenly over them.
        rows = stored.due(self.store, self.endpoint.name, now, 2 * LANE_ROWS * self.endpoint.lanes)
        # At most LANE_ROWS sends per lane before their outcomes are recorded: a kill loses
        # (and so sends again) only those, and new events wait only that long to be queued.
        lanes = into_lanes(rows, self.endpoint.lanes, LANE_ROWS)
        if not lanes:
            due = stored.next_due(self.store, self.endpoint.name)
            wait = (due - now).total_seconds() if due is not None else IDLE_SECONDS
            return max(0.05, min(IDLE_SECONDS, wait))
        outcomes = [o for done in self._pool.map(self._lane, lanes) for o in done]
        stored.record_outcomes(self.store, self.endpoint.name, outcomes, self._now())
        for o in outcomes:
            self._on_outcome(self.endpoint.label, "failed" if o.state == "pending" else o.state)
        if self._gone is not None:
            self._disable(f"{self._gone.error} (410 Gone: the endpoint asked to stop)")
        return 0.0

    def _lane(self, rows: Sequence[Pending]) -> list[Outcome]:
        """Send a lane's deliveries in order; after a failure, that job's later ones wait."""
        done: list[Outcome] = []
        failed: set[str] = set()
        for p in rows:
            if self._stop_event.is_set() or self._gone or self._held_until > time.monotonic():
                break
            if not self._leading():
                break  # the lease ran out: the next leader sends the rest
            if p.event.job_id in failed:
                continue
            body = orjson.dumps(event_body(p.event), option=orjson.OPT_UTC_Z)
            attempt = self.endpoint.sender.send(p.event.id, body)
            done.append(outcome(p, attempt, self._now(), self._rng))
            if not attempt.ok:
                failed.add(p.event.job_id)
                log.info(
                    "delivery_failed",
                    endpoint=self.endpoint.label,
                    event_id=p.event.id,
                    status=attempt.status,
                    error=attempt.error,
                    attempts=p.attempts + 1,
                )
            if attempt.retry_after is not None:
                self._held_until = max(self._held_until, time.monotonic() + attempt.retry_after)
            if attempt.gone:
                self._gone = attempt
        return done

    def _disable(self, reason: str, *, record: bool = True) -> None:
        self.disabled = True
        if record:
            stored.disable(self.store, self.endpoint.name, reason, self._now())
        log.error("endpoint_disabled", endpoint=self.endpoint.label, reason=reason)
        self._on_disabled(self.endpoint.label, reason)
