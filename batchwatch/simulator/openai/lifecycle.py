"""A simulated OpenAI batch's lifecycle: pure functions of its plan and the clock.

As in the Mistral simulator (``batchwatch.simulator.lifecycle``), a batch's whole future is
fixed at create (a ``BatchPlan``) and its status at any instant is *computed* from the clock;
nothing runs in the background. The request schedule is that simulator's ``JobPlan``, reused
as is: requests complete linearly over the run time, request ``i`` (0-based) fails when
``floor((i+1)*rate) > floor(i*rate)``, and the ``sim_*`` directives are parsed by the same
``plan_job``. What differs is OpenAI's status graph (the Batch object's ``status`` enum):

* ``completed``: ``validating`` for the queue time, ``in_progress`` over the run time, then
  ``finalizing`` for ``FINALIZE_FRACTION`` of the run time (at least ``MIN_FINALIZE_SECONDS``,
  so a poller can see it), then ``completed``.
* ``failed``: ``validating``, then ``failed`` when validation ends. Nothing ran: OpenAI only
  fails a batch whose input did not validate (or could not be enqueued).
* ``expired``: ``validating``, ``in_progress``, then ``expired`` at 80% of the requests. The
  requests that ran have results; the others are neither completed nor failed.
* A cancel of a ``validating`` or ``in_progress`` batch freezes the counters, shows
  ``cancelling`` at once and ``cancelled`` ``cancel_seconds`` later (OpenAI: "cancelling
  for up to 10 minutes").

``request_counts`` follows OpenAI's meaning, not Mistral's: ``completed`` counts the requests
that *succeeded*, ``failed`` those that ran and failed, and ``total`` is 0 until the batch is
``in_progress`` (OpenAI's own example of a ``validating`` batch shows ``total: 0``).

Directives, as batch metadata (legal upstream, echoed back unchanged): ``sim_outcome`` =
completed | failed | expired (default completed), ``sim_queue_seconds`` and
``sim_run_seconds`` (override the settings), ``sim_failure_rate`` (fraction of requests that
fail, default 0). A bad value is a 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from batchwatch.models import JobStatus
from batchwatch.simulator.api_errors import SimApiError
from batchwatch.simulator.lifecycle import JobPlan, plan_job
from batchwatch.simulator.openai.errors import OpenAIApiError
from batchwatch.simulator.settings import SimulatorSettings
from batchwatch.simulator.timelines import StatusEntry, with_cancel


class BatchStatus(StrEnum):
    """The ``status`` enum of OpenAI's Batch object."""

    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {BatchStatus.FAILED, BatchStatus.COMPLETED, BatchStatus.EXPIRED, BatchStatus.CANCELLED}
)
CANCELLABLE = frozenset({BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS})
OUTCOMES = (BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.EXPIRED)
# The Mistral outcome whose request schedule each outcome shares: TIMEOUT_EXCEEDED stops at
# 80% of the requests, which is what an expiry is; FAILED never runs a request here.
_SCHEDULE = {
    BatchStatus.COMPLETED: JobStatus.SUCCESS,
    BatchStatus.FAILED: JobStatus.FAILED,
    BatchStatus.EXPIRED: JobStatus.TIMEOUT_EXCEEDED,
}
FINALIZE_FRACTION = 0.1
MIN_FINALIZE_SECONDS = 0.01


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """A batch's whole future, fixed at create."""

    schedule: JobPlan  # when each request runs and whether it fails (Mistral's rules)
    outcome: BatchStatus  # COMPLETED, FAILED or EXPIRED
    finalize_seconds: float

    @property
    def created_at(self) -> float:
        return self.schedule.created_at

    @property
    def total(self) -> int:
        return self.schedule.total_requests

    @property
    def starts_at(self) -> float:
        """When validation ends: ``in_progress``, or ``failed``."""
        return self.schedule.starts_at

    @property
    def stops_at(self) -> float:
        """When the last request that will run has run."""
        return self.starts_at if self.outcome is BatchStatus.FAILED else self.schedule.ends_at


def timeline(
    plan: BatchPlan, cancel_at: float | None, cancel_seconds: float
) -> tuple[StatusEntry[BatchStatus], ...]:
    """Every status the batch has or will have, with the instant it enters each."""
    start = StatusEntry(BatchStatus.VALIDATING, plan.created_at)
    running = StatusEntry(BatchStatus.IN_PROGRESS, plan.starts_at)
    natural: tuple[StatusEntry[BatchStatus], ...]
    if plan.outcome is BatchStatus.FAILED:
        natural = (start, StatusEntry(BatchStatus.FAILED, plan.starts_at))
    elif plan.outcome is BatchStatus.EXPIRED:
        natural = (start, running, StatusEntry(BatchStatus.EXPIRED, plan.stops_at))
    else:
        finalizing = StatusEntry(BatchStatus.FINALIZING, plan.stops_at)
        done = StatusEntry(BatchStatus.COMPLETED, plan.stops_at + plan.finalize_seconds)
        natural = (start, running, finalizing, done)
    return with_cancel(
        natural,
        cancel_at,
        cancel_seconds,
        cancelling=BatchStatus.CANCELLING,
        cancelled=BatchStatus.CANCELLED,
    )


@dataclass(frozen=True, slots=True)
class BatchState:
    """What the batch looks like at one instant. ``processed`` requests ran, ``failed`` of
    them failed; ``entered`` maps each status reached to the instant it was entered."""

    status: BatchStatus
    entered: Mapping[BatchStatus, float]
    total: int  # as shown: 0 until in_progress
    processed: int
    failed: int

    @property
    def succeeded(self) -> int:
        return self.processed - self.failed

    def entered_at(self, status: BatchStatus) -> int | None:
        """Epoch seconds, as the Batch object's ``*_at`` fields show them."""
        at = self.entered.get(status)
        return None if at is None else int(at)


def state_at(plan: BatchPlan, line: tuple[StatusEntry[BatchStatus], ...], now: float) -> BatchState:
    seen = [entry for entry in line if entry.at <= now] or [line[0]]
    entered: dict[BatchStatus, float] = {}
    for entry in seen:
        entered.setdefault(entry.status, entry.at)
    started = BatchStatus.IN_PROGRESS in entered
    # A cancel freezes the counters where they were when it was requested.
    frozen = next((e.at for e in line if e.status is BatchStatus.CANCELLING), now)
    processed = plan.schedule.completed_by(min(now, frozen)) if started else 0
    return BatchState(
        status=seen[-1].status,
        entered=entered,
        total=plan.total if started else 0,
        processed=processed,
        failed=plan.schedule.failed_among(processed),
    )


def plan_batch(
    settings: SimulatorSettings,
    metadata: Mapping[str, str] | None,
    now: float,
    total: int,
    *,
    valid: bool = True,
    pad_bytes: int = 0,
) -> BatchPlan:
    """The plan for a new batch: the settings, overridden by ``sim_*`` directives. An input
    that did not validate (``valid=False``) fails whatever ``sim_outcome`` says."""
    directives = dict(metadata or {})
    raw = directives.get("sim_outcome", BatchStatus.COMPLETED.value)
    if raw not in OUTCOMES:
        raise OpenAIApiError(
            400,
            f"sim_outcome must be one of {', '.join(OUTCOMES)}, not {raw!r}",
            param="metadata",
        )
    outcome = BatchStatus(raw) if valid else BatchStatus.FAILED
    directives["sim_outcome"] = _SCHEDULE[outcome].value
    try:
        schedule = plan_job(settings, directives, now, total)
    except SimApiError as exc:  # the directive's message, in OpenAI's error body
        raise OpenAIApiError(400, exc.message, param="metadata") from None
    finalize = max(FINALIZE_FRACTION * schedule.run_seconds, MIN_FINALIZE_SECONDS)
    return BatchPlan(replace(schedule, pad_bytes=pad_bytes), outcome, finalize)
