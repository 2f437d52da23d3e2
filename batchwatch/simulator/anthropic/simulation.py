"""The Anthropic simulation: every batch behind one lock, and the operations the routes call;
the request counts and the fault injector are ``control.RequestCounts``'.

* Listing stays cheap with 11,000 batches: ids are kept in creation order (a list, plus each
  id's position), a page walks only its own stretch of that list from its cursor, and only
  the page's batches have their state computed (an O(1) pure function of the clock).
  Deleted batches keep their place, skipped, so a cursor on one still works. Reading all
  11,000 over loopback, page by page: 0.8 s at ``limit=1000``, 1.1 s at 100 (mostly JSON).
* The "404 right after create" quirk: the first ``hidden_gets`` retrieves of a new batch
  answer 404 not_found_error, as the real API can for a moment after a create. Counted in
  requests, not seconds, so tests are deterministic; 0 by default (the simulation's
  ``hidden_gets``, settable at run time), or per batch with ``sim_hidden_gets``.
* A cancel of an ``in_progress`` batch starts its ``canceling``; of a ``canceling`` one
  returns it unchanged; of an ended one is a 400. Only ended batches can be deleted (else a
  400, as documented: "you must first cancel it"); a deleted batch answers 404 everywhere,
  its history stays readable.
* Results of a batch that has not ended are a 400 invalid_request_error: its
  ``results_url`` is still ``null``, and the API documents no status for that case.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from batchwatch.simulator.anthropic.batches import BatchRequest, BatchView, SimBatch
from batchwatch.simulator.anthropic.errors import AnthropicApiError, random_id
from batchwatch.simulator.anthropic.fault_profile import ANTHROPIC_FAULTS
from batchwatch.simulator.anthropic.lifecycle import (
    Directives,
    ProcessingStatus,
    outcome_named,
    state_at,
    timeline,
)
from batchwatch.simulator.anthropic.results import result_chunks
from batchwatch.simulator.control import RequestCounts
from batchwatch.simulator.fault_injector import FaultInjector
from batchwatch.simulator.settings import SimulatorSettings
from batchwatch.simulator.timelines import StatusEntry


@dataclass(frozen=True, slots=True)
class BatchPage:
    """One page of ``GET /v1/messages/batches``, newest first."""

    batches: list[BatchView]
    has_more: bool


class AnthropicSimulation(RequestCounts):
    """The simulator's state, behind one lock. ``clock`` is injectable for tests."""

    def __init__(
        self,
        settings: SimulatorSettings,
        clock: Callable[[], float] = time.time,
        hidden_gets: int = 0,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._batches: dict[str, SimBatch] = {}
        self._deleted: dict[str, SimBatch] = {}
        self._order: list[str] = []  # every id ever created, oldest first
        self._position: dict[str, int] = {}  # id -> its index in _order
        self._hidden: dict[str, int] = {}  # id -> retrieves that still answer 404
        self._hidden_gets = hidden_gets
        super().__init__(
            FaultInjector(settings.faults, settings.fault_seed, profile=ANTHROPIC_FAULTS)
        )

    # Batches -------------------------------------------------------------------------------

    def create_batch(
        self, requests: Sequence[BatchRequest], user_id: str | None = None
    ) -> BatchView:
        """A new batch; ``user_id`` is the first request's ``metadata.user_id``."""
        directives = Directives.from_user_id(user_id)
        with self._lock:
            now = self._clock()
            plan = directives.plan(self.settings, now, len(requests))
            batch = self._insert(SimBatch(random_id("msgbatch_"), plan, tuple(requests)))
            hidden = self._hidden_gets if directives.hidden_gets is None else directives.hidden_gets
            if hidden:
                self._hidden[batch.id] = hidden
            return self._view(batch, now)

    def seed_jobs(
        self,
        count: int,
        total_requests: int,
        outcome: str = "succeeded",
        *,
        queue_seconds: float | None = None,
        run_seconds: float | None = None,
        failure_rate: float = 0.0,
    ) -> list[str]:
        """``count`` batches of ``total_requests`` synthetic requests each, in one go (for
        benchmarks: ``queue_seconds=0, run_seconds=0`` seeds ended ones). Timings default to
        the settings'."""
        if count < 0 or total_requests < 1 or not 0.0 <= failure_rate <= 1.0:
            raise ValueError("count >= 0, total_requests >= 1 and 0 <= failure_rate <= 1")
        for value in (queue_seconds, run_seconds):
            if value is not None and not value >= 0:
                raise ValueError(f"timings must be 0 or more seconds, not {value!r}")
        directives = Directives(outcome_named(outcome), queue_seconds, run_seconds, failure_rate)
        with self._lock:
            plan = directives.plan(self.settings, self._clock(), total_requests)
            return [self._insert(SimBatch(random_id("msgbatch_"), plan, None)).id
                    for _ in range(count)]  # fmt: skip

    def get_batch(self, batch_id: str) -> BatchView:
        with self._lock:
            batch = self._batch(batch_id)
            hidden = self._hidden.get(batch_id, 0)
            if hidden:
                # Not yet visible to reads: the create's response was the only sign of it.
                self._hidden[batch_id] = hidden - 1
                raise _not_found(batch_id)
            return self._view(batch, self._clock())

    def list_batches(
        self, limit: int = 20, after_id: str | None = None, before_id: str | None = None
    ) -> BatchPage:
        """``limit`` batches, newest first: the oldest ones, the ones just older than
        ``after_id``, or the ones just newer than ``before_id``."""
        if after_id is not None and before_id is not None:
            raise AnthropicApiError(400, "after_id and before_id cannot both be given")
        with self._lock:
            now = self._clock()
            if before_id is None:
                start = len(self._order) if after_id is None else self._cursor(after_id)
                ids = self._walk(range(start - 1, -1, -1), limit + 1)
            else:
                ids = self._walk(range(self._cursor(before_id) + 1, len(self._order)), limit + 1)
            has_more = len(ids) > limit
            ids = ids[:limit]
            if before_id is not None:
                ids.reverse()  # walked upwards from the cursor; a page is newest first
            return BatchPage([self._view(self._batches[i], now) for i in ids], has_more)

    def cancel_batch(self, batch_id: str) -> BatchView:
        with self._lock:
            now = self._clock()
            batch = self._batch(batch_id)
            status = self._view(batch, now).status
            if status is ProcessingStatus.IN_PROGRESS:
                batch = self._batches[batch_id] = replace(batch, cancel_at=now)
            elif status is ProcessingStatus.ENDED:
                raise AnthropicApiError(
                    400, f"Message Batch {batch_id} has already ended and cannot be canceled"
                )
            return self._view(batch, now)

    def delete_batch(self, batch_id: str) -> None:
        with self._lock:
            now = self._clock()
            batch = self._batch(batch_id)
            if self._view(batch, now).status is not ProcessingStatus.ENDED:
                raise AnthropicApiError(
                    400, f"Message Batch {batch_id} is still processing: cancel it before "
                    "deleting it",
                )  # fmt: skip
            del self._batches[batch_id]
            self._hidden.pop(batch_id, None)
            self._deleted[batch_id] = replace(batch, deleted_at=now)

    def results(self, batch_id: str) -> Iterator[bytes]:
        """The results file of an ended batch, in chunks (rendered lazily, unlocked)."""
        with self._lock:
            batch = self._batch(batch_id)
            if self._view(batch, self._clock()).status is not ProcessingStatus.ENDED:
                raise AnthropicApiError(
                    400, f"Message Batch {batch_id} has not ended yet: its results are not "
                    "available",
                )  # fmt: skip
        return result_chunks(batch)  # frozen: safe to render outside the lock

    def history(self, job_id: str) -> list[StatusEntry[ProcessingStatus]]:
        """The true status sequence so far (a deleted batch's, up to its deletion). Named
        ``job_id`` like the other simulators' ``history``."""
        with self._lock:
            batch = self._batches.get(job_id) or self._deleted.get(job_id)
            if batch is None:
                raise _not_found(job_id)
            until = self._clock() if batch.deleted_at is None else batch.deleted_at
            line = timeline(batch.plan, batch.cancel_at, self.settings.cancel_seconds)
            return [entry for entry in line if entry.at <= until]

    # The "404 right after create" default ------------------------------------------------

    @property
    def hidden_gets(self) -> int:
        with self._lock:
            return self._hidden_gets

    def set_hidden_gets(self, count: int) -> None:
        """How many retrieves of each batch created from now on answer 404 at first."""
        if count < 0:
            raise ValueError(f"hidden_gets must be 0 or more, not {count}")
        with self._lock:
            self._hidden_gets = count

    # Internals (the lock is held) -----------------------------------------------------------

    def _insert(self, batch: SimBatch) -> SimBatch:
        self._batches[batch.id] = batch
        self._position[batch.id] = len(self._order)
        self._order.append(batch.id)
        return batch

    def _batch(self, batch_id: str) -> SimBatch:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise _not_found(batch_id)
        return batch

    def _cursor(self, batch_id: str) -> int:
        position = self._position.get(batch_id)
        if position is None:
            raise AnthropicApiError(400, f"No Message Batch with id {batch_id} to page from")
        return position

    def _walk(self, positions: range, wanted: int) -> list[str]:
        """Up to ``wanted`` live ids, at ``positions`` in that order."""
        found: list[str] = []
        for position in positions:
            batch_id = self._order[position]
            if batch_id in self._batches:
                found.append(batch_id)
                if len(found) == wanted:
                    break
        return found

    def _view(self, batch: SimBatch, now: float) -> BatchView:
        state = state_at(batch.plan, batch.cancel_at, self.settings.cancel_seconds, now)
        return BatchView(batch, state)


def _not_found(batch_id: str) -> AnthropicApiError:
    return AnthropicApiError(404, f"No Message Batch found with id {batch_id}")
