"""A simulated Message Batch's lifecycle: pure functions of its plan, its cancel and the clock.

A batch's whole future is fixed at create (a ``BatchPlan``); its state at any instant is
*computed*, nothing runs in the background. It is ``in_progress`` for ``queue_seconds`` +
``run_seconds``, then ``ended``. Requests are worked through linearly over the run (none
during the queue time); request ``i`` (0-based) errors when ``floor((i+1)*rate) >
floor(i*rate)``, so ``errored == floor(processed*rate)`` always.

* Outcome ``succeeded``: every request is processed by the end (succeeded or errored).
* Outcome ``expired`` (the batch hit its 24-hour limit): it processes the first
  ``EXPIRED_SHARE`` of its requests, then stalls; at the end the others are ``expired``.
* A cancel of an ``in_progress`` batch shows ``canceling`` at once (``cancel_initiated_at``
  set) and ``ended`` ``cancel_seconds`` later; the requests processed when it was asked for
  keep their result, the others are ``canceled``.

As the API documents, ``request_counts`` keeps every request in ``processing`` until the
batch ends, then splits them into succeeded/errored/canceled/expired: progress cannot be
seen while a batch runs.

Directives (simulator-only, legal upstream) ride in ``params.metadata.user_id`` of the
batch's first request, as ``;``-separated ``key=value`` items; items whose key does not start
with ``sim_`` are ignored, so a real user id may sit beside them
(``"user-42;sim_outcome=expired"``). ``parse_directives`` reads them; a bad one is a 400.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from batchwatch.simulator.anthropic.errors import AnthropicApiError
from batchwatch.simulator.api_errors import SimApiError
from batchwatch.simulator.lifecycle import directive_number
from batchwatch.simulator.settings import SimulatorSettings
from batchwatch.simulator.timelines import StatusEntry, with_cancel

BATCH_LIFETIME_SECONDS = 24 * 3600  # expires_at: "24 hours after creation"
EXPIRED_SHARE = 0.5  # how far through its requests an ``expired`` batch gets
_EPSILON = 1e-9  # keeps 10 requests x 0.3 at 3, not 2.999… rounded down


class ProcessingStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    CANCELING = "canceling"
    ENDED = "ended"


class ResultType(StrEnum):
    """A request's result, and the key of its count in ``request_counts``."""

    SUCCEEDED = "succeeded"
    ERRORED = "errored"
    CANCELED = "canceled"
    EXPIRED = "expired"


OUTCOMES = (ResultType.SUCCEEDED, ResultType.EXPIRED)
DIRECTIVES = ("sim_outcome", "sim_queue_seconds", "sim_run_seconds", "sim_failure_rate",
              "sim_hidden_gets")  # fmt: skip


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """A batch's whole future, fixed at create."""

    created_at: float
    queue_seconds: float
    run_seconds: float
    outcome: ResultType
    total: int
    failure_rate: float = 0.0

    @property
    def starts_at(self) -> float:
        return self.created_at + self.queue_seconds

    @property
    def ends_at(self) -> float:
        """When the batch ends if nobody cancels it."""
        return self.starts_at + self.run_seconds

    @property
    def expires_at(self) -> float:
        return self.created_at + BATCH_LIFETIME_SECONDS

    @property
    def reachable(self) -> int:
        """How many requests the batch processes if left alone."""
        if self.outcome is ResultType.EXPIRED:
            return math.floor(self.total * EXPIRED_SHARE + _EPSILON)
        return self.total

    def processed_by(self, t: float) -> int:
        """Requests processed by ``t`` if nothing interrupts the batch."""
        if t < self.starts_at:
            return 0
        if self.run_seconds <= 0 or t >= self.ends_at:
            return self.reachable
        done = math.floor(self.total * (t - self.starts_at) / self.run_seconds + _EPSILON)
        return min(done, self.reachable)

    def errored_among(self, processed: int) -> int:
        return math.floor(processed * self.failure_rate + _EPSILON)

    def request_errored(self, index: int) -> bool:
        return self.errored_among(index + 1) > self.errored_among(index)


def timeline(
    plan: BatchPlan, cancel_at: float | None, cancel_seconds: float
) -> tuple[StatusEntry[ProcessingStatus], ...]:
    """Every status the batch has or will have, with the instant it enters each."""
    natural = (
        StatusEntry(ProcessingStatus.IN_PROGRESS, plan.created_at),
        StatusEntry(ProcessingStatus.ENDED, plan.ends_at),
    )
    # Only an in-progress batch can be cancelled (``cancel_at`` before ``ends_at``): the
    # cut keeps ``in_progress`` alone, then ``canceling``, then ``ended``.
    return with_cancel(
        natural,
        cancel_at,
        cancel_seconds,
        cancelling=ProcessingStatus.CANCELING,
        cancelled=ProcessingStatus.ENDED,
    )


@dataclass(frozen=True, slots=True)
class BatchState:
    """What the batch looks like at one instant: its status and ``request_counts``."""

    status: ProcessingStatus
    ended_at: float | None
    processing: int
    succeeded: int = 0
    errored: int = 0
    canceled: int = 0
    expired: int = 0

    def counts(self) -> dict[str, int]:
        """``request_counts`` as the API shows it."""
        return {
            "processing": self.processing,
            "succeeded": self.succeeded,
            "errored": self.errored,
            "canceled": self.canceled,
            "expired": self.expired,
        }


def processed_at_end(plan: BatchPlan, cancel_at: float | None) -> int:
    """How many requests an ended batch processed: a cancel freezes the count."""
    return plan.processed_by(plan.ends_at if cancel_at is None else cancel_at)


def state_at(
    plan: BatchPlan, cancel_at: float | None, cancel_seconds: float, now: float
) -> BatchState:
    line = timeline(plan, cancel_at, cancel_seconds)
    current = [entry for entry in line if entry.at <= now] or [line[0]]
    status = current[-1].status
    if status is not ProcessingStatus.ENDED:
        return BatchState(status, None, processing=plan.total)
    processed = processed_at_end(plan, cancel_at)
    errored = plan.errored_among(processed)
    left = plan.total - processed
    return BatchState(
        status,
        current[-1].at,
        processing=0,
        succeeded=processed - errored,
        errored=errored,
        canceled=left if cancel_at is not None else 0,
        expired=left if cancel_at is None else 0,
    )


def result_of(plan: BatchPlan, cancel_at: float | None, index: int) -> ResultType:
    """The result of request ``index`` of an ended batch."""
    if index < processed_at_end(plan, cancel_at):
        return ResultType.ERRORED if plan.request_errored(index) else ResultType.SUCCEEDED
    return ResultType.EXPIRED if cancel_at is None else ResultType.CANCELED


# --- Directives --------------------------------------------------------------------------


def parse_directives(user_id: str | None) -> dict[str, str]:
    """The ``sim_*`` items of a ``metadata.user_id``; an unknown ``sim_`` key is a 400."""
    found: dict[str, str] = {}
    for raw in (user_id or "").split(";"):
        item = raw.strip()
        if not item.startswith("sim_"):
            continue  # a real user id, or nothing
        key, equals, value = item.partition("=")
        key = key.strip()
        if not equals or key not in DIRECTIVES:
            raise AnthropicApiError(
                400, f"bad simulator directive {item!r}: use key=value with a key among "
                f"{', '.join(DIRECTIVES)}",
            )  # fmt: skip
        found[key] = value.strip()
    return found


@dataclass(frozen=True, slots=True)
class Directives:
    """What a batch's directives (or ``seed_jobs``' arguments) ask for."""

    outcome: ResultType = ResultType.SUCCEEDED
    queue_seconds: float | None = None  # None: the settings'
    run_seconds: float | None = None
    failure_rate: float = 0.0
    hidden_gets: int | None = None  # None: the simulation's default

    @classmethod
    def from_user_id(cls, user_id: str | None) -> Directives:
        items = parse_directives(user_id)
        hidden = items.get("sim_hidden_gets")
        return cls(
            outcome=outcome_named(items.get("sim_outcome", ResultType.SUCCEEDED.value)),
            queue_seconds=_number(items, "sim_queue_seconds"),
            run_seconds=_number(items, "sim_run_seconds"),
            failure_rate=_number(items, "sim_failure_rate", upper=1.0) or 0.0,
            hidden_gets=None if hidden is None else _count(hidden, "sim_hidden_gets"),
        )

    def plan(self, settings: SimulatorSettings, now: float, total: int) -> BatchPlan:
        return BatchPlan(
            created_at=now,
            queue_seconds=_or(self.queue_seconds, settings.queue_seconds),
            run_seconds=_or(self.run_seconds, settings.run_seconds),
            outcome=self.outcome,
            total=total,
            failure_rate=self.failure_rate,
        )


def outcome_named(name: str) -> ResultType:
    if name not in OUTCOMES:
        raise AnthropicApiError(
            400, f"sim_outcome must be one of {', '.join(OUTCOMES)}, not {name!r}"
        )
    return ResultType(name)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _number(items: dict[str, str], key: str, upper: float = math.inf) -> float | None:
    try:
        return directive_number(items, key, upper)
    except SimApiError as exc:  # the directive's message, in Anthropic's error body
        raise AnthropicApiError(400, exc.message) from None


def _count(raw: str, key: str) -> int:
    if not raw.isdigit():
        raise AnthropicApiError(400, f"{key} must be a whole number, 0 or more, not {raw!r}")
    return int(raw)
