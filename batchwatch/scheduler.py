"""APScheduler wiring: when a poll runs. What a poll does lives in ``poller.py``."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from batchwatch.errors import LeaseLost
from batchwatch.health import Health
from batchwatch.logs import get_logger

log = get_logger("batchwatch.scheduler")


def describe_error(exc: BaseException, limit: int = 300) -> str:
    """One short line: a database error's message carries the whole SQL statement and its
    parameters, which belong in neither a log line nor /healthz."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = text[0] if text else ""
    line = f"{type(exc).__name__}: {first}"
    return line if len(line) <= limit else line[: limit - 1] + "…"


class _OverrunIsExpected(logging.Filter):
    """Drops APScheduler's warning that a tick was skipped because the previous cycle still
    runs: with ``max_instances=1`` that is the design, not a fault. ``PollScheduler`` says it
    itself, as an info event of the daemon's own."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances" not in str(record.msg)


_APSCHEDULER_LOG = logging.getLogger("apscheduler.scheduler")
_APSCHEDULER_LOG.addFilter(_OverrunIsExpected())


class PollScheduler:
    """Runs ``cycle`` every ``interval`` seconds on a background thread, never overlapping,
    and ``heartbeat`` every ``heartbeat_every`` seconds on another."""

    def __init__(
        self,
        cycle: Callable[[], object],
        interval: float,
        health: Health,
        *,
        on_cycle: Callable[[bool, float], None] | None = None,
        heartbeat: Callable[[], None] | None = None,
        heartbeat_every: float = 10.0,
        leading: Callable[[], bool] | None = None,
    ) -> None:
        """``leading`` (team mode): whether this daemon leads now; a follower's ticks poll
        nothing."""
        self._cycle = cycle
        self._leading = leading
        self._health = health
        self._on_cycle = on_cycle
        self._idle = threading.Event()
        self._idle.set()
        self._scheduler = BackgroundScheduler(timezone=UTC)
        self._scheduler.add_job(
            self._tick,
            IntervalTrigger(seconds=interval, timezone=UTC),
            id="poll",
            # A slow cycle delays the next one instead of running beside it; ticks missed
            # meanwhile collapse into one run rather than a burst.
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=datetime.now(UTC),
        )
        if heartbeat is not None:
            self._scheduler.add_job(
                heartbeat,
                IntervalTrigger(seconds=heartbeat_every, timezone=UTC),
                id="heartbeat",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
                # The first beat comes one period after start: READY=1 goes out first.
            )

        self._scheduler.add_listener(self._overran, EVENT_JOB_MAX_INSTANCES)

    def start(self) -> None:
        self._scheduler.start()

    def poll_now(self) -> None:
        """Run a cycle now rather than at the next tick (this daemon just became leader)."""
        if self._scheduler.running:
            self._scheduler.modify_job("poll", next_run_time=datetime.now(UTC))

    @staticmethod
    def _overran(event: JobSubmissionEvent) -> None:
        if event.job_id == "poll":
            log.info("poll_delayed", reason="the previous cycle is still running")

    def shutdown(self, grace: float = 8.0) -> bool:
        """Stop scheduling; give a running cycle ``grace`` seconds to finish. False when it
        is still running (its writes are one transaction: abandoning it loses nothing)."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        return self._idle.wait(grace)

    def _tick(self) -> None:
        if self._leading is not None and not self._leading():
            self._health.standby(datetime.now(UTC))
            return
        self._idle.clear()
        self._health.cycle_started(datetime.now(UTC))
        started = time.monotonic()
        try:
            self._run_cycle(started)
        finally:
            self._idle.set()

    def _run_cycle(self, started: float) -> None:
        ok = False
        try:
            self._cycle()
            ok = True
        except LeaseLost as exc:
            # Not a failure of polling: another daemon leads now, and polls. Not counted.
            log.info("poll_discarded", reason=str(exc))
            self._health.standby(datetime.now(UTC))
            return
        except Exception as exc:  # a failed cycle must never stop the schedule
            error = describe_error(exc)
            log.error("poll_failed", error=error)
            self._health.record_failure(datetime.now(UTC), error)
        else:
            self._health.record_success(datetime.now(UTC))
        if self._on_cycle is not None:
            self._on_cycle(ok, time.monotonic() - started)
