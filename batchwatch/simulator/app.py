"""An in-memory, Mistral-compatible batch + files API server, for the demo and the tests.

It follows docs/mistral-api.md and Mistral's OpenAPI spec (every response validates against it;
``tests/test_simulator.py`` checks that through the official SDK). Choices where Mistral
documents nothing:

* Lifecycle. A job's whole future is fixed at create (a ``JobPlan``) and its status at any
  instant is *computed* from the clock; nothing runs in the background. QUEUED for the
  queue time, then RUNNING with ``completed_requests`` rising linearly over the run time,
  then the planned outcome: SUCCESS (all done), FAILED (job-level failure half-way, one
  entry in ``errors``), TIMEOUT_EXCEEDED (stops at 80% of the requests). A cancel of a
  QUEUED/RUNNING job freezes the counters, shows CANCELLATION_REQUESTED at once and
  CANCELLED ``cancel_seconds`` later; cancelling a job in that state or CANCELLED returns it
  unchanged; any other terminal job gets a 400. Request ``i`` (0-based) fails when
  ``floor((i+1)*rate) > floor(i*rate)``, so ``failed == floor(completed*rate)`` always.
* Result files. A finished job that completed any request (always, for SUCCESS) gets an
  ``output_file`` with the succeeded requests, and an ``error_file`` when one failed; the
  line formats are described in ``simulator_files``. ``?inline=true`` on an inline job
  returns the output file's lines as ``outputs``.
* Create validation: exactly one of ``input_files``/``requests`` must be non-empty, else a
  FastAPI-style 422 (it is a body-shape error like the spec's own constraints). An unknown
  input file is a 404 with Mistral's error body; input files without any request are a 400.
  ``model`` stays optional, as in the spec.
* ``created_after`` keeps jobs created at or after the instant; naive datetimes are UTC.
  Unknown list query keys are metadata filters, as the SDK flattens ``metadata={...}``
  (``?team=a``; a repeated key matches any of its values). Jobs created through the API
  belong to the caller (``created_by_me``); ``/_sim/jobs/bulk`` can seed other people's.
* Deleting a job is allowed in any state; it then answers 404 (its history stays readable).

Simulator-only directives, as job metadata (legal upstream, echoed back unchanged):
``sim_outcome`` = SUCCESS | FAILED | TIMEOUT_EXCEEDED (default SUCCESS), ``sim_queue_seconds``
and ``sim_run_seconds`` (floats as strings; override the settings), ``sim_failure_rate``
(fraction of requests that fail, default "0"). A bad value is a 400.

Control routes, no auth: ``GET /_sim/jobs/{id}/history`` (the true status sequence),
``GET /_sim/stats`` and ``POST /_sim/stats/reset`` (``/v1`` requests per route template),
``POST /_sim/jobs/bulk`` (seed many jobs without files, for benchmarks). Fault injection
(429s, 5xx, resets, lost responses, bad bodies) and the request log: ``simulator_faults``.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import heapq
import math
import secrets
import signal
import socket
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any, Literal

import uvicorn
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from batchwatch.models import EndpointName, JobStatus, StatusName
from batchwatch.providers.mistral.schemas import CreateBatchJobIn, MetadataKey, MetadataValue
from batchwatch.simulator.faults import (
    TRANSPORT_EXTENSION,
    FaultInjector,
    FaultLayer,
    FaultRule,
    faults_router,
    route_key,
)
from batchwatch.simulator.files import (
    FilePurpose,
    FileQuery,
    FileStore,
    FileVisibility,
    RequestLine,
    ResultSource,
    StoredFile,
    error_body,
    files_router,
    jsonl_objects,
    parse_request_lines,
    result_file,
    uploaded_file,
)


@dataclass(frozen=True, slots=True)
class SimulatorSettings:
    api_key: str | None = None  # when set, only this bearer key; else any non-empty one
    queue_seconds: float = 2.0
    run_seconds: float = 10.0
    cancel_seconds: float = 1.0
    latency_seconds: float = 0.0  # added to every /v1 response, for benchmarks
    faults: tuple[FaultRule, ...] = ()  # injected from the start (simulator_faults)
    fault_seed: int = 0


class SimApiError(Exception):
    """An error answered with Mistral's documented body (docs/mistral-api.md §3)."""

    def __init__(self, status_code: int, message: str, error_type: str = "invalid_request_error"):
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.error_type = error_type


# --- The job lifecycle: pure functions of a plan and the clock -------------------------

OUTCOMES = (JobStatus.SUCCESS, JobStatus.FAILED, JobStatus.TIMEOUT_EXCEEDED)
# How far through its requests a job gets before its outcome lands.
_STOP_FRACTION = {JobStatus.SUCCESS: 1.0, JobStatus.FAILED: 0.5, JobStatus.TIMEOUT_EXCEEDED: 0.8}
_CANCELLABLE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})


@dataclass(frozen=True, slots=True)
class JobPlan:
    """A job's whole future, fixed at create."""

    created_at: float
    queue_seconds: float
    run_seconds: float
    outcome: JobStatus
    total_requests: int
    failure_rate: float = 0.0

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


@dataclass(frozen=True, slots=True)
class StatusEntry:
    status: JobStatus
    at: float


def timeline(
    plan: JobPlan, cancel_at: float | None, cancel_seconds: float
) -> tuple[StatusEntry, ...]:
    """Every status the job has or will have, with the instant it enters each."""
    natural = (
        StatusEntry(JobStatus.QUEUED, plan.created_at),
        StatusEntry(JobStatus.RUNNING, plan.starts_at),
        StatusEntry(plan.outcome, plan.ends_at),
    )
    if cancel_at is None:
        return natural
    kept = tuple(entry for entry in natural if entry.at <= cancel_at)
    return (
        *kept,
        StatusEntry(JobStatus.CANCELLATION_REQUESTED, cancel_at),
        StatusEntry(JobStatus.CANCELLED, cancel_at + cancel_seconds),
    )


def status_at(line: tuple[StatusEntry, ...], now: float) -> JobStatus:
    status = line[0].status
    for entry in line:
        if entry.at > now:
            break
        status = entry.status
    return status


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


def state_at(plan: JobPlan, line: tuple[StatusEntry, ...], now: float) -> JobState:
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
    )


def _directive(
    directives: Mapping[str, str], key: str, default: float, upper: float = math.inf
) -> float:
    raw = directives.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= upper:  # also rejects NaN
        raise SimApiError(400, f"{key} must be a number between 0 and {upper}, not {raw!r}")
    return value


# --- The simulation: thread-safe state --------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a create asks for (``CreateBatchJobRequest``, already validated)."""

    endpoint: str
    model: str | None = None
    agent_id: str | None = None
    metadata: Mapping[str, str] | None = None
    input_files: tuple[str, ...] = ()
    requests: tuple[RequestLine, ...] | None = None  # inline requests
    timeout_hours: int = 24


@dataclass(frozen=True, slots=True)
class _Job:
    id: str
    spec: JobSpec
    owner: str  # "me" (created through the API) or "other"
    plan: JobPlan
    line: tuple[StatusEntry, ...]
    requests: tuple[RequestLine, ...] | None  # None: synthetic (seeded jobs)
    deleted_at: float | None = None


@dataclass(frozen=True, slots=True)
class JobView:
    """A job at one instant, as the API shows it."""

    id: str
    spec: JobSpec
    plan: JobPlan
    state: JobState
    output_file: str | None
    error_file: str | None
    outputs: list[dict[str, Any]] | None = None

    def to_wire(self) -> dict[str, Any]:
        """``BatchJob`` (docs/mistral-api.md §1.3): timestamps are int epoch seconds."""
        state = self.state
        return {
            "id": self.id,
            "object": "batch",
            "input_files": list(self.spec.input_files),
            "metadata": None if self.spec.metadata is None else dict(self.spec.metadata),
            "endpoint": self.spec.endpoint,
            "model": self.spec.model,
            "agent_id": self.spec.agent_id,
            "output_file": self.output_file,
            "error_file": self.error_file,
            "errors": _job_errors(state.status),
            "outputs": self.outputs,
            "status": state.status.value,
            "created_at": int(self.plan.created_at),
            "total_requests": self.plan.total_requests,
            "completed_requests": state.completed,
            "succeeded_requests": state.succeeded,
            "failed_requests": state.failed,
            "started_at": _epoch(state.started_at),
            "completed_at": _epoch(state.completed_at),
        }


def _job_errors(status: JobStatus) -> list[dict[str, Any]]:
    if status is JobStatus.FAILED:
        return [{"message": "Simulated job failure: the batch stopped half-way", "count": 1}]
    return []


def _epoch(t: float | None) -> int | None:
    return None if t is None else int(t)


@dataclass(frozen=True, slots=True)
class JobQuery:
    """Query parameters of ``GET /v1/batch/jobs``; ``metadata`` maps a key to allowed values."""

    page: int = 0
    page_size: int = 100
    model: str | None = None
    agent_id: str | None = None
    created_after: float | None = None
    created_by_me: bool = False
    statuses: frozenset[JobStatus] = frozenset()
    metadata: tuple[tuple[str, frozenset[str]], ...] = ()
    order_by: str = "-created"

    def matches(self, job: _Job) -> bool:
        """The filters that never change over a job's life (all but ``statuses``)."""
        spec, metadata = job.spec, job.spec.metadata or {}
        return (
            (self.model is None or spec.model == self.model)
            and (self.agent_id is None or spec.agent_id == self.agent_id)
            and (self.created_after is None or job.plan.created_at >= self.created_after)
            and (not self.created_by_me or job.owner == "me")
            and all(metadata.get(key) in values for key, values in self.metadata)
        )


@dataclass(frozen=True, slots=True)
class JobList:
    jobs: list[JobView]
    total: int


class _VersionedCache:
    """A small LRU of listings, each valid only for the version it was computed at."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._entries: OrderedDict[JobQuery, tuple[int, list[str]]] = OrderedDict()

    def get(self, key: JobQuery, version: int) -> list[str] | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] != version:
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: JobQuery, version: int, ids: list[str]) -> None:
        self._entries[key] = (version, ids)
        self._entries.move_to_end(key)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)


class Simulation:
    """The simulator's state: jobs, files and request counts, behind one lock.

    Statuses are computed from the clock, but listing 10,000 jobs must not compute 10,000
    statuses per page. So each job's next status change sits in a heap; ``_advance`` applies
    the changes that are due, keeps ``_status`` current and bumps ``_version``. A filtered,
    sorted listing is cached until the next bump, and a page then costs only its own jobs.
    """

    def __init__(self, settings: SimulatorSettings, clock: Callable[[], float] = time.time):
        self.settings = settings
        self._clock = clock
        self._lock = threading.RLock()
        self._jobs: dict[str, _Job] = {}
        self._deleted: dict[str, _Job] = {}
        self._order: list[tuple[float, str]] = []  # (created_at, id), ascending
        self._status: dict[str, JobStatus] = {}
        self._due: list[tuple[float, str]] = []  # heap of (next change, job id)
        self._next_change: dict[str, float] = {}
        self._version = 0  # bumped by every change a listing can see
        self._membership = 0  # bumped when a job is added or deleted
        self._static_listings = _VersionedCache()
        self._listings = _VersionedCache()
        self._files = FileStore()
        self._results: dict[str, tuple[str | None, str | None]] = {}  # output, error file
        self._requests: Counter[str] = Counter()
        self.faults = FaultInjector(settings.faults, settings.fault_seed)

    # Jobs ------------------------------------------------------------------------------

    def create_job(self, spec: JobSpec, owner: str = "me") -> JobView:
        with self._lock:
            now = self._advance()
            requests = spec.requests if spec.requests is not None else self._input_lines(spec)
            if not requests:
                raise SimApiError(400, "The batch has no requests: its input files are empty")
            plan = plan_job(self.settings, spec.metadata, now, len(requests))
            job = self._insert(spec, owner, plan, requests)
            bisect.insort(self._order, (now, job.id))
            return self._view(job, now)

    def seed_jobs(
        self, count: int, spec: JobSpec, total_requests: int, owner: str = "me"
    ) -> list[str]:
        """``count`` jobs with synthetic requests, inserted in one go (benchmarks)."""
        with self._lock:
            now = self._advance()
            plan = plan_job(self.settings, spec.metadata, now, total_requests)
            ids = [self._insert(spec, owner, plan, None).id for _ in range(count)]
            self._order.extend((now, job_id) for job_id in ids)
            self._order.sort()
            return ids

    def get_job(self, job_id: str, inline: bool = False) -> JobView:
        with self._lock:
            now = self._advance()
            return self._view(self._job(job_id), now, inline=inline)

    def list_jobs(self, query: JobQuery) -> JobList:
        with self._lock:
            now = self._advance()
            ids = self._listing(replace(query, page=0, page_size=0))
            start = query.page * query.page_size
            page = ids[start : start + query.page_size]
            return JobList([self._view(self._jobs[i], now) for i in page], len(ids))

    def cancel_job(self, job_id: str) -> JobView:
        with self._lock:
            now = self._advance()
            job = self._job(job_id)
            status = self._status[job_id]
            if status in _CANCELLABLE:
                line = timeline(job.plan, now, self.settings.cancel_seconds)
                job = self._jobs[job_id] = replace(job, line=line)
                self._refresh(job, now)
            elif status not in (JobStatus.CANCELLATION_REQUESTED, JobStatus.CANCELLED):
                raise SimApiError(400, f"Job {job_id} is {status.value} and cannot be cancelled")
            return self._view(job, now)

    def delete_job(self, job_id: str) -> None:
        with self._lock:
            now = self._advance()
            job = self._job(job_id)
            del self._jobs[job_id], self._status[job_id]
            self._next_change.pop(job_id, None)
            self._order.remove((job.plan.created_at, job_id))
            self._deleted[job_id] = replace(job, deleted_at=now)
            self._version += 1
            self._membership += 1

    def history(self, job_id: str) -> list[StatusEntry]:
        """The true status sequence so far (the deleted's up to their deletion)."""
        with self._lock:
            now = self._advance()
            job = self._jobs.get(job_id) or self._deleted.get(job_id)
            if job is None:
                raise SimApiError(404, f"No job with id {job_id}")
            until = now if job.deleted_at is None else job.deleted_at
            return [entry for entry in job.line if entry.at <= until]

    # Files -----------------------------------------------------------------------------

    def upload_file(
        self,
        filename: str,
        content: bytes,
        purpose: FilePurpose,
        visibility: FileVisibility = "workspace",
        expiry_hours: int | None = None,
    ) -> StoredFile:
        with self._lock:
            now = self._advance()
            stored = uploaded_file(
                filename,
                content,
                purpose=purpose,
                created_at=now,
                visibility=visibility,
                expiry_hours=expiry_hours,
            )
            self._files.add(stored)
            return stored

    def list_files(self, query: FileQuery) -> tuple[list[StoredFile], int]:
        with self._lock:
            self._advance()
            return self._files.list(query)

    def get_file(self, file_id: str) -> StoredFile:
        with self._lock:
            self._advance()
            stored = self._files.get(file_id)
            if stored is None:
                raise SimApiError(404, f"File {file_id} not found")
            return stored

    def delete_file(self, file_id: str) -> None:
        with self._lock:
            self._advance()
            if not self._files.delete(file_id):
                raise SimApiError(404, f"File {file_id} not found")

    # Request counts (for /_sim/stats) ----------------------------------------------------

    def count_request(self, key: str) -> None:
        with self._lock:
            self._requests[key] += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"total": self._requests.total(), "requests": dict(self._requests)}

    def reset_stats(self) -> None:
        with self._lock:
            self._requests.clear()
        self.faults.clear_log()

    # Internals (the lock is held) ---------------------------------------------------------

    def _job(self, job_id: str) -> _Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise SimApiError(404, f"No batch job with id {job_id}")
        return job

    def _input_lines(self, spec: JobSpec) -> tuple[RequestLine, ...]:
        lines: list[RequestLine] = []
        for file_id in spec.input_files:
            stored = self._files.get(file_id)
            if stored is None:
                raise SimApiError(404, f"File {file_id} not found")
            lines.extend(parse_request_lines(stored.content))
        return tuple(lines)

    def _insert(
        self, spec: JobSpec, owner: str, plan: JobPlan, requests: tuple[RequestLine, ...] | None
    ) -> _Job:
        job_id = str(uuid.uuid4())
        line = timeline(plan, None, self.settings.cancel_seconds)
        job = self._jobs[job_id] = _Job(job_id, spec, owner, plan, line, requests)
        self._membership += 1
        self._refresh(job, plan.created_at)
        return job

    def _advance(self) -> float:
        """Apply every status change due by now; return now."""
        now = self._clock()
        while self._due and self._due[0][0] <= now:
            at, job_id = heapq.heappop(self._due)
            job = self._jobs.get(job_id)
            # Entries go stale when a cancel or delete rewrote the job's future.
            if job is not None and self._next_change.get(job_id) == at:
                self._refresh(job, now)
        return now

    def _refresh(self, job: _Job, now: float) -> None:
        """Bring ``_status`` up to date for one job and queue its next change."""
        status = status_at(job.line, now)
        if self._status.get(job.id) is not status:
            self._status[job.id] = status
            self._version += 1
            if status.is_terminal:
                self._finish(job, now)
        upcoming = next((e.at for e in job.line if e.at > now), None)
        if upcoming is None:
            self._next_change.pop(job.id, None)
        else:
            self._next_change[job.id] = upcoming
            heapq.heappush(self._due, (upcoming, job.id))

    def _finish(self, job: _Job, now: float) -> None:
        """Register the result files of a job that just ended (rendered on first read)."""
        state = state_at(job.plan, job.line, now)
        source = ResultSource(
            job_id=job.id,
            endpoint=job.spec.endpoint,
            model=job.spec.model,
            requests=job.requests,
            processed=state.completed,
            is_failed=job.plan.request_failed,
            finished_at=state.completed_at or now,
        )
        has_output = bool(state.completed) or state.status is JobStatus.SUCCESS
        self._results[job.id] = (
            self._lazy_result(source, errors=False) if has_output else None,
            self._lazy_result(source, errors=True) if state.failed else None,
        )

    def _lazy_result(self, source: ResultSource, *, errors: bool) -> str:
        file_id = str(uuid.uuid4())
        self._files.add_lazy(file_id, partial(result_file, source, errors=errors, file_id=file_id))
        return file_id

    def _listing(self, key: JobQuery) -> list[str]:
        """The ids matching ``key``'s filters, in its order.

        Two cached levels, because they go stale at different rates: the fixed filters
        only when a job is added or deleted, the status filter at every status change
        (then re-filtering 10,000 cached ids costs well under a millisecond).
        """
        static_key = replace(key, statuses=frozenset())
        ids = self._static_listings.get(static_key, self._membership)
        if ids is None:
            ids = [job_id for _, job_id in self._order if key.matches(self._jobs[job_id])]
            if key.order_by == "-created":
                ids.reverse()
            self._static_listings.put(static_key, self._membership, ids)
        if not key.statuses:
            return ids
        filtered = self._listings.get(key, self._version)
        if filtered is None:
            filtered = [job_id for job_id in ids if self._status[job_id] in key.statuses]
            self._listings.put(key, self._version, filtered)
        return filtered

    def _view(self, job: _Job, now: float, inline: bool = False) -> JobView:
        state = state_at(job.plan, job.line, now)
        output_file, error_file = self._results.get(job.id, (None, None))
        outputs = None
        if inline and job.spec.requests is not None and output_file is not None:
            stored = self._files.get(output_file)
            outputs = None if stored is None else jsonl_objects(stored.content)
        return JobView(job.id, job.spec, job.plan, state, output_file, error_file, outputs)


# --- HTTP: request bodies ---------------------------------------------------------------

def job_spec(body: CreateBatchJobIn) -> JobSpec:
    """A validated create body as the simulation's job spec."""
    inline = None
    if body.requests:
        inline = tuple(RequestLine(r.custom_id, r.body) for r in body.requests)
    return JobSpec(
        endpoint=body.endpoint,
        model=body.model,
        agent_id=body.agent_id,
        metadata=body.metadata,
        input_files=tuple(str(f) for f in body.input_files or ()),
        requests=inline,
        timeout_hours=body.timeout_hours,
    )


class BulkSeedIn(BaseModel):
    count: Annotated[int, Field(ge=1, le=100_000)]
    endpoint: EndpointName = "/v1/chat/completions"
    model: str | None = "mistral-small-latest"
    total_requests: Annotated[int, Field(ge=1)] = 10
    metadata: dict[MetadataKey, MetadataValue] | None = None
    created_by: Literal["me", "other"] = "me"


# --- HTTP: routes -------------------------------------------------------------------------

_LIST_PARAMS = frozenset(
    {"page", "page_size", "model", "agent_id", "metadata", "created_after", "created_by_me",
     "status", "order_by"}
)  # fmt: skip


def _batch_router(simulation: Simulation) -> APIRouter:
    """The ``/v1/batch/jobs`` routes (docs/mistral-api.md §1). Auth is checked by the gateway."""
    router = APIRouter()

    # jobs_api_routes_batch_get_batch_jobs
    @router.get("/v1/batch/jobs")
    async def list_jobs(
        request: Request,
        *,
        page: Annotated[int, Query(ge=0)] = 0,
        page_size: Annotated[int, Query(ge=0)] = 100,
        model: str | None = None,
        agent_id: str | None = None,
        created_after: datetime | None = None,
        created_by_me: bool = False,
        status: Annotated[list[StatusName] | None, Query()] = None,
        order_by: Literal["created", "-created"] = "-created",
    ) -> JSONResponse:
        query = JobQuery(
            page=page,
            page_size=page_size,
            model=model,
            agent_id=agent_id,
            created_after=None if created_after is None else _epoch_seconds(created_after),
            created_by_me=created_by_me,
            statuses=frozenset(JobStatus(s) for s in status or ()),
            metadata=_metadata_filters(request),
            order_by=order_by,
        )
        listing = simulation.list_jobs(query)
        data = [job.to_wire() for job in listing.jobs]
        return JSONResponse({"object": "list", "data": data, "total": listing.total})

    # jobs_api_routes_batch_create_batch_job: 200, not 201
    @router.post("/v1/batch/jobs")
    async def create_job(body: CreateBatchJobIn) -> JSONResponse:
        return JSONResponse(simulation.create_job(job_spec(body)).to_wire())

    # jobs_api_routes_batch_get_batch_job
    @router.get("/v1/batch/jobs/{job_id}")
    async def get_job(job_id: uuid.UUID, inline: bool | None = None) -> JSONResponse:
        return JSONResponse(simulation.get_job(str(job_id), inline=bool(inline)).to_wire())

    # jobs_api_routes_batch_cancel_batch_job: answers with the whole BatchJob
    @router.post("/v1/batch/jobs/{job_id}/cancel")
    async def cancel_job(job_id: uuid.UUID) -> JSONResponse:
        return JSONResponse(simulation.cancel_job(str(job_id)).to_wire())

    # jobs_api_routes_batch_delete_batch_job
    @router.delete("/v1/batch/jobs/{job_id}")
    async def delete_job(job_id: uuid.UUID) -> JSONResponse:
        simulation.delete_job(str(job_id))
        return JSONResponse({"id": str(job_id), "object": "batch", "deleted": True})

    return router


def _epoch_seconds(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _metadata_filters(request: Request) -> tuple[tuple[str, frozenset[str]], ...]:
    """Unknown query keys, which is how the SDK sends ``metadata={"team": "a"}``."""
    wanted: dict[str, set[str]] = {}
    for key, value in request.query_params.multi_items():
        if key not in _LIST_PARAMS:
            wanted.setdefault(key, set()).add(value)
    return tuple(sorted((key, frozenset(values)) for key, values in wanted.items()))


def _control_router(simulation: Simulation) -> APIRouter:
    """``/_sim``: the truth for tests and the seeding for benchmarks; no auth."""
    router = APIRouter(prefix="/_sim")

    @router.get("/jobs/{job_id}/history")
    async def history(job_id: str) -> JSONResponse:
        entries = simulation.history(job_id)
        statuses = [{"status": e.status.value, "at": e.at} for e in entries]
        return JSONResponse({"job_id": job_id, "statuses": statuses})

    @router.get("/stats")
    async def stats() -> JSONResponse:
        return JSONResponse(simulation.stats())

    @router.post("/stats/reset")
    async def reset_stats() -> JSONResponse:
        simulation.reset_stats()
        return JSONResponse(simulation.stats())

    @router.post("/jobs/bulk")
    async def seed(body: BulkSeedIn) -> JSONResponse:
        spec = JobSpec(endpoint=body.endpoint, model=body.model, metadata=body.metadata)
        ids = simulation.seed_jobs(body.count, spec, body.total_requests, body.created_by)
        return JSONResponse({"ids": ids})

    return router


class _Gateway:
    """What Mistral's gateway does before a ``/v1`` route runs: count it, delay it, check
    the bearer key. Done here rather than as a FastAPI dependency so that a bad key wins
    over every other error (a 422 must not leak to a caller without a key)."""

    def __init__(
        self, app: ASGIApp, simulation: Simulation, settings: SimulatorSettings,
        routes: list[BaseRoute],
    ) -> None:  # fmt: skip
        self.app = app
        self.simulation = simulation
        self.settings = settings
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        self.simulation.count_request(route_key(self.routes, scope))
        if self.settings.latency_seconds > 0:
            await asyncio.sleep(self.settings.latency_seconds)
        if self._authorized(scope):
            await self.app(scope, receive, send)
            return
        body = error_body("Unauthorized: missing or invalid API key", "authentication_error")
        reply = JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        await reply(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        headers = dict(scope["headers"])
        scheme, _, key = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return False
        return self.settings.api_key is None or secrets.compare_digest(key, self.settings.api_key)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, SimApiError):  # registered for SimApiError only
        raise exc
    return JSONResponse(error_body(exc.message, exc.error_type), status_code=exc.status_code)


def create_app(settings: SimulatorSettings, simulation: Simulation | None = None) -> FastAPI:
    """The simulator's ASGI app. ``settings`` drives auth and latency; the lifecycle timings
    are the ``simulation``'s own (built from ``settings`` when not given)."""
    simulation = simulation or Simulation(settings)
    app = FastAPI(title="batchwatch Mistral simulator", version="1")
    app.state.simulation = simulation
    v1_routers = (_batch_router(simulation), files_router(simulation))
    for router in (*v1_routers, _control_router(simulation), faults_router(simulation.faults)):
        app.include_router(router)
    app.add_exception_handler(SimApiError, _api_error)
    # The gateway matches against the routers' own routes: FastAPI wraps included
    # routers in internal objects that do not expose the path templates.
    v1_routes = [route for router in v1_routers for route in router.routes]
    app.add_middleware(_Gateway, simulation=simulation, settings=settings, routes=v1_routes)
    # Outermost, so that a fault can pre-empt the gateway (a 429 needs no valid key).
    app.add_middleware(
        FaultLayer, injector=simulation.faults, routes=v1_routes, count=simulation.count_request
    )
    return app


# --- Serving --------------------------------------------------------------------------------


@dataclass
class RunningSimulator:
    """A simulator serving in a background thread (see ``start_in_thread``)."""

    url: str
    simulation: Simulation
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _socket: socket.socket = field(repr=False)

    def stop(self) -> None:
        """Stop serving and join the thread; safe to call twice."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


class _ConnectionAwareH11(H11Protocol):
    """uvicorn's h11 protocol, handing every request its connection (the asyncio transport)
    in ``scope["extensions"]``: a fault closes it to answer with nothing at all."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        app = self.app

        async def with_transport(scope: Any, receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})[TRANSPORT_EXTENSION] = transport
            await app(scope, receive, send)

        self.app = with_transport


def _uvicorn_config(app: FastAPI, log_level: str, **kwargs: Any) -> uvicorn.Config:
    # ws="none": the simulator has no websockets, and importing them warns on some
    # versions, which ``filterwarnings = error`` would turn into a failure. The protocol
    # lets the fault layer close a connection without answering.
    return uvicorn.Config(
        app, log_level=log_level, access_log=False, lifespan="off", ws="none",
        http=_ConnectionAwareH11, **kwargs,
    )  # fmt: skip


def start_in_thread(
    settings: SimulatorSettings, host: str = "127.0.0.1", port: int = 0
) -> RunningSimulator:
    """Serve on ``host:port`` (0: a free port) in a daemon thread; return once it listens."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio only sets TCP_NODELAY on accepted
    # connections of a socket whose proto says TCP, and without it every response
    # waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Binding here, not in uvicorn, is what makes port 0 race-free: the port is known
    # and held before the server thread even starts.
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    simulation = Simulation(settings)
    server = uvicorn.Server(_uvicorn_config(create_app(settings, simulation), "warning"))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="mistral-simulator", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the simulator did not start on {host}:{port}")
        time.sleep(0.005)
    bound_port = sock.getsockname()[1]
    url_host = f"[{host}]" if family == socket.AF_INET6 else host
    return RunningSimulator(f"http://{url_host}:{bound_port}", simulation, server, thread, sock)


def serve(settings: SimulatorSettings, host: str, port: int) -> None:
    """Serve in the foreground until SIGINT/SIGTERM, then return (``batchwatch simulate``)."""
    config = _uvicorn_config(create_app(settings), "info", host=host, port=port)
    with _absorb_reraised_signals():
        uvicorn.Server(config).run()


@contextlib.contextmanager
def _absorb_reraised_signals() -> Iterator[None]:
    """uvicorn stops on SIGINT/SIGTERM, restores the previous handlers and raises the signal
    again for them. Ignoring it there lets ``serve`` return normally, instead of the process
    dying with status 143 (SIGTERM) or a KeyboardInterrupt (SIGINT)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
