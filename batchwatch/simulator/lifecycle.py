"""A simulated job's lifecycle: pure functions of its plan and the clock.

A job's whole future is fixed at create (a ``JobPlan``) and its status at any instant is
*computed* from the clock; nothing runs in the background. QUEUED for the queue time, then
RUNNING with ``completed_requests`` rising linearly over the run time, then the planned
outcome: SUCCESS (all done), FAILED (job-level failure half-way, one entry in ``errors``),
TIMEOUT_EXCEEDED (stops at 80% of the requests). A cancel of a QUEUED/RUNNING job freezes
the counters, shows CANCELLATION_REQUESTED at once and CANCELLED ``cancel_seconds`` later.
Request ``i`` (0-based) fails when ``floor((i+1)*rate) > floor(i*rate)``, so ``failed ==
floor(completed*rate)`` always. A failed request is reported in one of two forms a client
must both handle (``results`` writes them): a line of the error file, or a line of the output
file with a non-2xx ``status_code``. The ``k``-th failure (0-based) goes to the error file
when ``ceil((k+1)*share) > ceil(k*share)``, so of ``f`` failures ``ceil(f*share)`` are in the
error file and the rest in the output file; with the default share of 0.5 they alternate,
the first in the error file.

Simulator-only directives, as job metadata (legal upstream, echoed back unchanged):
``sim_outcome`` = SUCCESS | FAILED | TIMEOUT_EXCEEDED (default SUCCESS), ``sim_queue_seconds``
and ``sim_run_seconds`` (floats as strings; override the settings), ``sim_failure_rate``
(fraction of requests that fail, default "0"), ``sim_error_file_share`` (fraction of the
failures written to the error file rather than as non-2xx output lines, default "0.5"). A bad
value is a 400.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from batchwatch.models import JobStatus
from batchwatch.simulator.api_errors import SimApiError
from batchwatch.simulator.settings import SimulatorSettings
from batchwatch.simulator.timelines import StatusEntry, with_cancel

OUTCOMES = (JobStatus.SUCCESS, JobStatus.FAILED, JobStatus.TIMEOUT_EXCEEDED)
# How far through its requests a job gets before its outcome lands.
_STOP_FRACTION = {JobStatus.SUCCESS: 1.0, JobStatus.FAILED: 0.5, JobStatus.TIMEOUT_EXCEEDED: 0.8}


@dataclass(frozen=True, slots=True)
class JobPlan:
    """A job's whole future, fixed at create."""

    created_at: float
    queue_seconds: float
    run_seconds: float
    outcome: JobStatus
    total_requests: int
    failure_rate: float = 0.0
    error_file_share: float = 0.5
    pad_bytes: int = 0  # characters added to each answer's text (benchmarks' big files)

    @property
    def starts_at(self) -> float:
        return self.created_at + self.queue_seconds

    @property
    def ends_at(self) -> float:
        return self.starts_at + self.run_seconds * _STOP_FRACTION[self.outcome]

    def completed_by(self, t: float) -> int:
        """Requests completed by ``t`` if nothing interrupts the job."""
        if t < self.starts_at:
            return 0
        stop = _STOP_FRACTION[self.outcome]
        elapsed = stop if self.run_seconds <= 0 else (t - self.starts_at) / self.run_seconds
        # The epsilon keeps 10 requests x 0.8 at 8, not 7.999… rounded down.
        return min(self.total_requests, math.floor(self.total_requests * min(elapsed, stop) + 1e-9))

    def failed_among(self, completed: int) -> int:
        return math.floor(completed * self.failure_rate + 1e-9)

    def request_failed(self, index: int) -> bool:
        return self.failed_among(index + 1) > self.failed_among(index)

    def in_error_file(self, index: int) -> bool:
        """Request ``index`` failed and is reported in the error file (not the output)."""
        if not self.request_failed(index):
            return False
        ordinal = self.failed_among(index)  # failures before this one
        return self.error_lines_among(ordinal + 1) > self.error_lines_among(ordinal)

    def error_lines_among(self, failures: int) -> int:
        """How many of the first ``failures`` failures are error-file lines."""
        return math.ceil(failures * self.error_file_share - 1e-9)


def timeline(
    plan: JobPlan, cancel_at: float | None, cancel_seconds: float
) -> tuple[StatusEntry[JobStatus], ...]:
    """Every status the job has or will have, with the instant it enters each."""
    natural = (
        StatusEntry(JobStatus.QUEUED, plan.created_at),
        StatusEntry(JobStatus.RUNNING, plan.starts_at),
        StatusEntry(plan.outcome, plan.ends_at),
    )
    return with_cancel(
        natural,
        cancel_at,
        cancel_seconds,
        cancelling=JobStatus.CANCELLATION_REQUESTED,
        cancelled=JobStatus.CANCELLED,
    )


@dataclass(frozen=True, slots=True)
class JobState:
    """What the job looks like at one instant."""

    status: JobStatus
    started_at: float | None
    completed_at: float | None
    completed: int
    failed: int

    @property
    def succeeded(self) -> int:
        return self.completed - self.failed


def state_at(plan: JobPlan, line: tuple[StatusEntry[JobStatus], ...], now: float) -> JobState:
    seen = [entry for entry in line if entry.at <= now] or [line[0]]
    status = seen[-1].status
    started = next((e.at for e in seen if e.status is JobStatus.RUNNING), None)
    # A cancel freezes the counters where they were when it was requested.
    frozen = next((e.at for e in line if e.status is JobStatus.CANCELLATION_REQUESTED), now)
    completed = plan.completed_by(min(now, frozen))
    return JobState(
        status=status,
        started_at=started,
        completed_at=seen[-1].at if status.is_terminal else None,
        completed=completed,
        failed=plan.failed_among(completed),
    )


def plan_job(
    settings: SimulatorSettings, metadata: Mapping[str, str] | None, now: float, total: int
) -> JobPlan:
    """The plan for a new job: the settings, overridden by ``sim_*`` metadata directives."""
    directives = metadata or {}
    outcome = directives.get("sim_outcome", JobStatus.SUCCESS.value)
    if outcome not in OUTCOMES:
        raise SimApiError(400, f"sim_outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
    return JobPlan(
        created_at=now,
        queue_seconds=_directive(directives, "sim_queue_seconds", settings.queue_seconds),
        run_seconds=_directive(directives, "sim_run_seconds", settings.run_seconds),
        outcome=JobStatus(outcome),
        total_requests=total,
        failure_rate=_directive(directives, "sim_failure_rate", 0.0, upper=1.0),
        error_file_share=_directive(directives, "sim_error_file_share", 0.5, upper=1.0),
    )


def _directive(
    directives: Mapping[str, str], key: str, default: float, upper: float = math.inf
) -> float:
    value = directive_number(directives, key, upper)
    return default if value is None else value


def directive_number(
    directives: Mapping[str, str], key: str, upper: float = math.inf
) -> float | None:
    """The number directive ``key`` asks for (``None`` when absent): 0 to ``upper``, else a
    400 (``SimApiError``; the other simulators answer its message in their own body)."""
    raw = directives.get(key)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= upper:  # also rejects NaN
        raise SimApiError(400, f"{key} must be a number between 0 and {upper}, not {raw!r}")
    return value
