"""APScheduler wiring: when a poll runs. What a poll does lives in ``poller.py``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

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


class PollScheduler:
    """Runs ``cycle`` every ``interval`` seconds on a background thread, never overlapping."""

    def __init__(self, cycle: Callable[[], object], interval: float, health: Health) -> None:
        self._cycle = cycle
        self._health = health
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

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self, wait: bool = True) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)

    def _tick(self) -> None:
        try:
            self._cycle()
        except Exception as exc:  # a failed cycle must never stop the schedule
            error = describe_error(exc)
            log.error("poll_failed", error=error)
            self._health.record_failure(datetime.now(UTC), error)
        else:
            self._health.record_success(datetime.now(UTC))
