"""What ``/healthz`` reports: the outcome of recent poll cycles, kept thread-safe.

The scheduler thread writes, the API threads read. ``snapshot`` takes ``now`` so the rule
"the last good poll is too old" is tested without a clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from batchwatch.logs import redact


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    status: str  # "ok" | "degraded"
    reasons: tuple[str, ...]
    started_at: datetime
    last_poll_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    consecutive_failures: int
    cycles: int
    #: ``leader``, ``follower`` or ``single`` (SQLite), and the leader's name.
    role: str = "single"
    leader: str | None = None

    def to_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat().replace("+00:00", "Z") if value else None

        return {
            "status": self.status,
            "reasons": list(self.reasons),
            "started_at": iso(self.started_at),
            "last_poll_at": iso(self.last_poll_at),
            "last_success_at": iso(self.last_success_at),
            "last_error": self.last_error,
            "consecutive_failures": self.consecutive_failures,
            "cycles": self.cycles,
            "role": self.role,
            "leader": self.leader,
        }


class Health:
    def __init__(self, poll_interval: float, started_at: datetime) -> None:
        # A poll may be late by a couple of intervals (a slow cycle, retries) before that
        # is a problem worth paging anyone about.
        self._stale_after = timedelta(seconds=max(3 * poll_interval, poll_interval + 30))
        self._lock = threading.Lock()
        self._started_at = started_at
        self._last_poll_at: datetime | None = None
        self._last_success_at: datetime | None = None
        self._last_error: str | None = None
        self._failures = 0
        self._cycles = 0
        self._cycle_started_at: datetime | None = None
        #: Other parts' standing problems (the results directory full, say), by source.
        self._problems: dict[str, str] = {}
        #: Team mode: this daemon's role and the leader's name, as ``team.Team`` tells them.
        self._role: Callable[[], tuple[str, str | None]] = lambda: ("single", None)
        #: When this daemon last became the leader: its polls are judged from then on.
        self._leading_since = started_at
        #: A follower's scheduler ticks (it polls nothing, but must be seen alive).
        self._standby_at: datetime | None = None

    def team(self, role: Callable[[], tuple[str, str | None]]) -> None:
        """Report the role and leader that ``role`` says (a follower's polls are not late:
        it makes none)."""
        self._role = role

    def leading(self, at: datetime) -> None:
        """This daemon became the leader at ``at``: a poll is due from then, and an error
        from an earlier term is no longer the news."""
        with self._lock:
            self._leading_since = at
            self._last_error = None
            self._failures = 0

    def standby(self, at: datetime) -> None:
        """A follower's scheduler ticked (and polled nothing)."""
        with self._lock:
            self._standby_at = at

    def problem(self, source: str, reason: str | None) -> None:
        """``source``'s standing problem, reported until it says None."""
        with self._lock:
            if reason is None:
                self._problems.pop(source, None)
            else:
                self._problems[source] = redact(reason)

    def cycle_started(self, at: datetime) -> None:
        with self._lock:
            self._cycle_started_at = at

    def poller_alive(self, now: datetime, hang_after: timedelta) -> bool:
        """False when a cycle has been running for longer than ``hang_after``, or none has
        finished for that long past its interval: what the systemd watchdog must notice."""
        with self._lock:
            started = self._cycle_started_at
            finished = self._last_poll_at
            standby = self._standby_at
        if standby is not None and (started is None or standby > started):
            return now - standby < hang_after  # a follower: its scheduler ticks
        if started is None:
            return now - self._started_at < hang_after
        if finished is None or finished < started:  # a cycle is running
            return now - started < hang_after
        return now - finished < hang_after + self._stale_after

    def record_success(self, at: datetime) -> None:
        with self._lock:
            self._last_poll_at = self._last_success_at = at
            self._last_error = None
            self._failures = 0
            self._cycles += 1

    def record_failure(self, at: datetime, error: str) -> None:
        with self._lock:
            self._last_poll_at = at
            self._last_error = redact(error)
            self._failures += 1
            self._cycles += 1

    def snapshot(self, now: datetime) -> HealthSnapshot:
        role, leader = self._role()
        with self._lock:
            reasons: list[str] = []
            if role != "follower":
                reasons += self._poll_reasons(now)
            reasons += self._problems.values()
            return HealthSnapshot(
                status="degraded" if reasons else "ok",
                reasons=tuple(reasons),
                started_at=self._started_at,
                last_poll_at=self._last_poll_at,
                last_success_at=self._last_success_at,
                last_error=self._last_error,
                consecutive_failures=self._failures,
                cycles=self._cycles,
                role=role,
                leader=leader,
            )

    def _poll_reasons(self, now: datetime) -> list[str]:
        """What is wrong with this daemon's polling (called holding the lock)."""
        reasons = []
        if self._last_error is not None:
            reasons.append(f"last poll failed: {self._last_error}")
        success = self._last_success_at
        reference = max(success, self._leading_since) if success else self._leading_since
        if now - reference > self._stale_after:
            what = "last successful poll" if success else "no successful poll"
            reasons.append(f"{what} for {int((now - reference).total_seconds())}s")
        return reasons
