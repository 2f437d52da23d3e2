"""The OpenAI simulation: the simulator's whole state (batches, files) behind one lock, and
the operations the routes call; the request counts are ``control.RequestCounts``'.

* Create: the input file must exist (else 404, ``No such File object``) and have purpose
  ``batch`` (else 400). Its lines are validated at once (``inputs``); a bad file makes a
  batch that fails when validation ends, as upstream, not a 400.
* Cancel of a ``validating`` or ``in_progress`` batch rewrites its timeline (``lifecycle``);
  a second cancel while ``cancelling`` returns it unchanged; any other status is OpenAI's 409
  ``Cannot cancel a batch with status '<status>'.`` (what the live API answers for a
  completed batch; the spec documents only the 200).
* Result files are registered (rendered on first read, ``results``) the moment a batch
  ends: each batch's end sits in a heap that every operation drains first.
* Listing is newest first with an ``after`` cursor over one list kept in creation order,
  so a page costs its own batches only, however many there are (benchmarks seed 11,000);
  an ``after`` the simulator never issued is a 400.
* Seeded batches (``seed_jobs``) share one synthetic input file per seeding.
"""

from __future__ import annotations

import heapq
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from functools import partial

from batchwatch.simulator.control import RequestCounts
from batchwatch.simulator.fault_injector import FaultInjector
from batchwatch.simulator.file_store import FileStore
from batchwatch.simulator.openai.batches import (
    BatchPage,
    BatchRecord,
    BatchSpec,
    BatchView,
    token_limit_error,
)
from batchwatch.simulator.openai.bodies import default_model
from batchwatch.simulator.openai.errors import OpenAIApiError, no_such_file
from batchwatch.simulator.openai.fault_profile import OPENAI_FAULTS
from batchwatch.simulator.openai.files import (
    FILE_TTL_SECONDS,
    FileOrder,
    FilePage,
    SimFile,
    expiry,
    new_file_id,
    page_of,
    uploaded_file,
)
from batchwatch.simulator.openai.inputs import parse_input
from batchwatch.simulator.openai.lifecycle import (
    CANCELLABLE,
    BatchPlan,
    BatchStatus,
    plan_batch,
    state_at,
    timeline,
)
from batchwatch.simulator.openai.results import (
    ResultSource,
    request_tokens,
    result_file,
    synthetic_input_file,
)
from batchwatch.simulator.settings import SimulatorSettings
from batchwatch.simulator.timelines import StatusEntry, status_at


class OpenAISimulation(RequestCounts):
    """The simulator's state: batches and files behind one lock (the request counts are
    ``RequestCounts``')."""

    def __init__(self, settings: SimulatorSettings, clock: Callable[[], float] = time.time):
        self.settings = settings
        self._clock = clock
        self._lock = threading.RLock()
        self._batches: dict[str, BatchRecord] = {}
        self._order: list[str] = []  # batch ids, oldest first
        self._position: dict[str, int] = {}  # batch id -> index in _order
        self._due: list[tuple[float, str]] = []  # heap of (end instant, batch id)
        self._results: dict[str, tuple[str | None, str | None]] = {}  # output, error file
        self._usage: dict[str, tuple[int, int, int]] = {}  # id -> (requests summed, in, out)
        self._files = FileStore[SimFile]()
        faults = FaultInjector(settings.faults, settings.fault_seed, profile=OPENAI_FAULTS)
        super().__init__(faults)

    # Batches ---------------------------------------------------------------------------

    def create_batch(self, spec: BatchSpec) -> BatchView:
        with self._lock:
            now = self._advance()
            stored = self._files.get(spec.input_file_id)
            if stored is None:
                raise no_such_file(spec.input_file_id, param="input_file_id")
            if stored.purpose != "batch":
                raise OpenAIApiError(
                    400,
                    f"The input file {spec.input_file_id} must have purpose 'batch', "
                    f"not {stored.purpose!r}",
                    param="input_file_id",
                )
            parsed = parse_input(stored.content, spec.endpoint)
            plan = plan_batch(
                self.settings, spec.metadata, now, len(parsed.requests), valid=not parsed.errors
            )
            errors = parsed.errors
            if plan.outcome is BatchStatus.FAILED and not errors:
                errors = (token_limit_error(parsed.model),)
            line = timeline(plan, None, self.settings.cancel_seconds)
            record = BatchRecord(
                _batch_id(), spec, parsed.model, plan, line, errors, parsed.requests
            )
            self._insert(record)
            return self._view(record, now)

    def seed_jobs(
        self,
        count: int,
        total_requests: int,
        outcome: str = "completed",
        *,
        queue_seconds: float | None = None,
        run_seconds: float | None = None,
        failure_rate: float | None = None,
        endpoint: str = "/v1/chat/completions",
        pad_bytes: int = 0,
    ) -> list[str]:
        """``count`` batches of ``total_requests`` synthetic requests, inserted in one go
        (benchmarks); the timings default to the settings, as the ``sim_*`` directives do.
        ``pad_bytes`` characters of filler lengthen each answer. Oldest first."""
        directives = {"sim_outcome": outcome}
        for key, value in (("sim_queue_seconds", queue_seconds),
                           ("sim_run_seconds", run_seconds),
                           ("sim_failure_rate", failure_rate)):  # fmt: skip
            if value is not None:
                directives[key] = repr(float(value))
        with self._lock:
            now = self._advance()
            plan = plan_batch(self.settings, directives, now, total_requests, pad_bytes=pad_bytes)
            model = default_model(endpoint)
            errors = (token_limit_error(model),) if plan.outcome is BatchStatus.FAILED else ()
            spec = BatchSpec(self._synthetic_input(endpoint, plan, now), endpoint)
            line = timeline(plan, None, self.settings.cancel_seconds)
            records = [
                BatchRecord(_batch_id(), spec, model, plan, line, errors, None)
                for _ in range(count)
            ]
            for record in records:
                self._insert(record)
            return [record.id for record in records]

    def get_batch(self, batch_id: str) -> BatchView:
        with self._lock:
            now = self._advance()
            return self._view(self._batch(batch_id), now)

    def list_batches(self, after: str | None = None, limit: int = 20) -> BatchPage:
        """``limit`` batches, newest first, older than ``after`` when given."""
        with self._lock:
            now = self._advance()
            end = len(self._order)
            if after is not None:
                if after not in self._position:
                    message = f"No batch with id {after!r} to list after"
                    raise OpenAIApiError(400, message, param="after")
                end = self._position[after]
            start = max(end - limit, 0)
            page = [self._view(self._batches[i], now) for i in reversed(self._order[start:end])]
            return BatchPage(page, has_more=start > 0)

    def cancel_batch(self, batch_id: str) -> BatchView:
        with self._lock:
            now = self._advance()
            record = self._batch(batch_id)
            status = status_at(record.line, now)
            if status in CANCELLABLE:
                line = timeline(record.plan, now, self.settings.cancel_seconds)
                record = self._batches[batch_id] = replace(record, line=line)
                heapq.heappush(self._due, (record.ends_at, record.id))
            elif status is not BatchStatus.CANCELLING:
                message = f"Cannot cancel a batch with status '{status.value}'."
                raise OpenAIApiError(409, message)
            return self._view(record, now)

    def history(self, batch_id: str) -> list[StatusEntry[BatchStatus]]:
        """The true status sequence so far."""
        with self._lock:
            now = self._advance()
            return [entry for entry in self._batch(batch_id).line if entry.at <= now]

    # Files -----------------------------------------------------------------------------

    def upload_file(
        self, filename: str, content: bytes, purpose: str, ttl_seconds: int | None = None
    ) -> SimFile:
        with self._lock:
            now = self._advance()
            stored = uploaded_file(filename, content, purpose, now, ttl_seconds)
            self._files.add(stored)
            return stored

    def get_file(self, file_id: str) -> SimFile:
        with self._lock:
            self._advance()
            stored = self._files.get(file_id)
            if stored is None:
                raise no_such_file(file_id)
            return stored

    def list_files(
        self,
        *,
        purpose: str | None = None,
        order: FileOrder = "desc",
        after: str | None = None,
        limit: int = 10_000,
    ) -> FilePage:
        with self._lock:
            self._advance()
            files = self._files.all()
            return page_of(files, purpose=purpose, order=order, after=after, limit=limit)

    def delete_file(self, file_id: str) -> None:
        """Delete a file: its content then answers 404, as an expired result upstream."""
        with self._lock:
            self._advance()
            if not self._files.delete(file_id):
                raise no_such_file(file_id)

    # Internals (the lock is held) ---------------------------------------------------------

    def _batch(self, batch_id: str) -> BatchRecord:
        record = self._batches.get(batch_id)
        if record is None:
            raise OpenAIApiError(404, f"No batch found with id '{batch_id}'.", param="batch_id")
        return record

    def _insert(self, record: BatchRecord) -> None:
        self._batches[record.id] = record
        self._position[record.id] = len(self._order)
        self._order.append(record.id)
        heapq.heappush(self._due, (record.ends_at, record.id))

    def _synthetic_input(self, endpoint: str, plan: BatchPlan, now: float) -> str:
        file_id = new_file_id()
        expires = expiry(now, None, by_default=True)
        render = partial(synthetic_input_file, file_id, endpoint, plan.total, now, expires)
        self._files.add_lazy(file_id, render)
        return file_id

    def _advance(self) -> float:
        """Register the result files of every batch that has ended by now; return now."""
        now = self._clock()
        while self._due and self._due[0][0] <= now:
            at, batch_id = heapq.heappop(self._due)
            record = self._batches[batch_id]
            # An entry goes stale when a cancel rewrote the batch's future.
            if record.ends_at == at and batch_id not in self._results:
                self._finish(record)
        return now

    def _finish(self, record: BatchRecord) -> None:
        state = state_at(record.plan, record.line, record.ends_at)
        if state.status is BatchStatus.FAILED:
            self._results[record.id] = (None, None)
            return
        ttl = record.spec.output_ttl_seconds or FILE_TTL_SECONDS
        source = ResultSource(
            batch_id=record.id,
            endpoint=record.spec.endpoint,
            requests=record.requests,
            plan=record.plan,
            processed=state.processed,
            finished_at=record.ends_at,
            expires_at=int(record.ends_at) + ttl,
            expired=state.status is BatchStatus.EXPIRED,
        )
        self._results[record.id] = (
            self._lazy_result(source, errors=False) if source.has_output else None,
            self._lazy_result(source, errors=True) if source.has_errors else None,
        )

    def _lazy_result(self, source: ResultSource, *, errors: bool) -> str:
        file_id = new_file_id()
        self._files.add_lazy(file_id, partial(result_file, source, errors=errors, file_id=file_id))
        return file_id

    def _view(self, record: BatchRecord, now: float) -> BatchView:
        state = state_at(record.plan, record.line, now)
        output_file, error_file = self._results.get(record.id, (None, None))
        input_tokens, output_tokens = self._tokens(record, state.processed)
        return BatchView(record, state, output_file, error_file, input_tokens, output_tokens)

    def _tokens(self, record: BatchRecord, processed: int) -> tuple[int, int]:
        """The succeeded requests' tokens among the first ``processed``, summed once per
        request: a running batch adds only the requests that ran since the last read."""
        summed, input_tokens, output_tokens = self._usage.get(record.id, (0, 0, 0))
        schedule = record.plan.schedule
        for index in range(summed, processed):
            if not schedule.request_failed(index):
                more_in, more_out = request_tokens(
                    record.id, record.spec.endpoint, index, schedule.pad_bytes
                )
                input_tokens, output_tokens = input_tokens + more_in, output_tokens + more_out
        if processed > summed:
            self._usage[record.id] = (processed, input_tokens, output_tokens)
        return input_tokens, output_tokens


def _batch_id() -> str:
    return f"batch_{uuid.uuid4().hex}"
