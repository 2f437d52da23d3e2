"""The simulation: the simulator's whole state (jobs, files) behind one lock, and the
operations the routes call; the request counts are ``control.RequestCounts``'.

* A cancel of a QUEUED/RUNNING job rewrites its timeline (``lifecycle``); cancelling a job
  in CANCELLATION_REQUESTED or CANCELLED returns it unchanged; any other terminal job gets
  a 400.
* Result files. A finished job that completed any request (always, for SUCCESS) gets an
  ``output_file`` with the requests that got a response (2xx or not), and an ``error_file``
  when a failure is reported there (their lines: ``results``). ``?inline=true`` on an inline
  job returns the output file's lines as ``outputs``.
* Seeded jobs (``seed_jobs``) read one synthetic input file per seeding, listed in their
  ``input_files`` and downloadable like an upload; ``pad_bytes`` pads their answers.
* An unknown input file is a 404 with Mistral's error body; input files without any request
  are a 400.
* Jobs created through the API belong to the caller (``created_by_me``); ``seed_jobs`` can
  seed other people's.
* Deleting a job is allowed in any state; it then answers 404 (its history stays readable).
"""

from __future__ import annotations

import bisect
import heapq
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from functools import partial

from batchwatch.models import JobStatus, RemoteJob
from batchwatch.simulator.api_errors import SimApiError
from batchwatch.simulator.control import RequestCounts
from batchwatch.simulator.fault_injector import FaultInjector
from batchwatch.simulator.file_store import FileStore
from batchwatch.simulator.files import (
    FileQuery,
    FileVisibility,
    RequestLine,
    SimFilePurpose,
    StoredFile,
    jsonl_objects,
    parse_request_lines,
    uploaded_file,
)
from batchwatch.simulator.jobs import JobList, JobSpec, JobView, SimJob, SimJobQuery, remote_job
from batchwatch.simulator.lifecycle import (
    JobPlan,
    JobState,
    plan_job,
    state_at,
    timeline,
)
from batchwatch.simulator.results import ResultSource, result_file, synthetic_input_file
from batchwatch.simulator.settings import SimulatorSettings
from batchwatch.simulator.timelines import StatusEntry, status_at

_CANCELLABLE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})


class _VersionedCache:
    """A small LRU of listings, each valid only for the version it was computed at."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._entries: OrderedDict[SimJobQuery, tuple[int, list[str]]] = OrderedDict()

    def get(self, key: SimJobQuery, version: int) -> list[str] | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] != version:
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: SimJobQuery, version: int, ids: list[str]) -> None:
        self._entries[key] = (version, ids)
        self._entries.move_to_end(key)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)


class Simulation(RequestCounts):
    """The simulator's state: jobs and files behind one lock (the request counts are
    ``RequestCounts``').

    Statuses are computed from the clock, but listing 10,000 jobs must not compute 10,000
    statuses per page. So each job's next status change sits in a heap; ``_advance`` applies
    the changes that are due, keeps ``_status`` current and bumps ``_version``. A filtered,
    sorted listing is cached until the next bump, and a page then costs only its own jobs.
    """

    def __init__(self, settings: SimulatorSettings, clock: Callable[[], float] = time.time):
        self.settings = settings
        self._clock = clock
        self._lock = threading.RLock()
        self._jobs: dict[str, SimJob] = {}
        self._deleted: dict[str, SimJob] = {}
        self._order: list[tuple[float, str]] = []  # (created_at, id), ascending
        self._status: dict[str, JobStatus] = {}
        self._due: list[tuple[float, str]] = []  # heap of (next change, job id)
        self._next_change: dict[str, float] = {}
        self._version = 0  # bumped by every change a listing can see
        self._membership = 0  # bumped when a job is added or deleted
        self._static_listings = _VersionedCache()
        self._listings = _VersionedCache()
        self._files = FileStore[StoredFile]()
        self._results: dict[str, tuple[str | None, str | None]] = {}  # output, error file
        self._shown: dict[str, tuple[JobState, RemoteJob]] = {}  # each job's last view (_view)
        super().__init__(FaultInjector(settings.faults, settings.fault_seed))

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
        self,
        count: int,
        spec: JobSpec,
        total_requests: int,
        owner: str = "me",
        *,
        pad_bytes: int = 0,
    ) -> list[str]:
        """``count`` jobs with synthetic requests, inserted in one go (benchmarks). They
        share one synthetic input file (rendered on first read) unless ``spec`` names input
        files; ``pad_bytes`` characters of filler lengthen each answer (``bodies``)."""
        with self._lock:
            now = self._advance()
            plan = plan_job(self.settings, spec.metadata, now, total_requests)
            plan = replace(plan, pad_bytes=pad_bytes)
            if count and not spec.input_files:
                spec = replace(spec, input_files=(self._synthetic_input(spec, plan),))
            ids = [self._insert(spec, owner, plan, None).id for _ in range(count)]
            self._order.extend((now, job_id) for job_id in ids)
            self._order.sort()
            return ids

    def get_job(self, job_id: str, inline: bool = False) -> JobView:
        with self._lock:
            now = self._advance()
            return self._view(self._job(job_id), now, inline=inline)

    def list_jobs(self, query: SimJobQuery) -> JobList:
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
            self._shown.pop(job_id, None)
            self._next_change.pop(job_id, None)
            self._order.remove((job.plan.created_at, job_id))
            self._deleted[job_id] = replace(job, deleted_at=now)
            self._version += 1
            self._membership += 1

    def history(self, job_id: str) -> list[StatusEntry[JobStatus]]:
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
        purpose: SimFilePurpose,
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
            return query.select(self._files.all())

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

    # Internals (the lock is held) ---------------------------------------------------------

    def _job(self, job_id: str) -> SimJob:
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

    def _synthetic_input(self, spec: JobSpec, plan: JobPlan) -> str:
        file_id = str(uuid.uuid4())
        render = partial(
            synthetic_input_file,
            file_id, spec.endpoint, spec.model, plan.total_requests, plan.created_at,
        )  # fmt: skip
        self._files.add_lazy(file_id, render)
        return file_id

    def _insert(
        self, spec: JobSpec, owner: str, plan: JobPlan, requests: tuple[RequestLine, ...] | None
    ) -> SimJob:
        job_id = str(uuid.uuid4())
        line = timeline(plan, None, self.settings.cancel_seconds)
        job = self._jobs[job_id] = SimJob(job_id, spec, owner, plan, line, requests)
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

    def _refresh(self, job: SimJob, now: float) -> None:
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

    def _finish(self, job: SimJob, now: float) -> None:
        """Register the result files of a job that just ended (rendered on first read)."""
        state = state_at(job.plan, job.line, now)
        source = ResultSource(
            job_id=job.id,
            endpoint=job.spec.endpoint,
            model=job.spec.model,
            requests=job.requests,
            plan=job.plan,
            processed=state.completed,
            finished_at=state.completed_at or now,
        )
        has_output = bool(state.completed) or state.status is JobStatus.SUCCESS
        has_errors = bool(job.plan.error_lines_among(state.failed))
        self._results[job.id] = (
            self._lazy_result(source, errors=False) if has_output else None,
            self._lazy_result(source, errors=True) if has_errors else None,
        )

    def _lazy_result(self, source: ResultSource, *, errors: bool) -> str:
        file_id = str(uuid.uuid4())
        self._files.add_lazy(file_id, partial(result_file, source, errors=errors, file_id=file_id))
        return file_id

    def _listing(self, key: SimJobQuery) -> list[str]:
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

    def _view(self, job: SimJob, now: float, inline: bool = False) -> JobView:
        state = state_at(job.plan, job.line, now)
        # A cycle lists 10,000 jobs, most unchanged since the last cycle: their RemoteJob
        # is reused. CPU to serve 10,000 (list, serialise, encode): 102 ms with the
        # hand-written JSON this replaced, 136 ms building a RemoteJob per read, 101 ms
        # reusing it (the read right after all 10,000 changed: 165 ms, the GC walking the
        # kept records). The state decides the rest: result files are registered as a
        # job ends.
        shown = self._shown.get(job.id)
        if shown is None or shown[0] != state:
            files = self._results.get(job.id, (None, None))
            shown = self._shown[job.id] = (state, remote_job(job, state, *files))
        remote = shown[1]
        outputs = None
        if inline and job.spec.requests is not None and remote.output_file is not None:
            stored = self._files.get(remote.output_file)
            outputs = None if stored is None else jsonl_objects(stored.content)
        return JobView(remote, job.spec, job.plan, state, outputs)
