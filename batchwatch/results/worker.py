"""The results worker: fetches every ended job's files and builds its ledger, beside polling.

One thread wakes every ``scan_seconds``: it queues the jobs that ended since the last scan
(``store.results.queue_ended``) and hands the due ones to a pool of ``concurrency`` threads.
The poll cycle never waits for any of it: downloads have their own threads and their own
HTTP client, and the ledger is written in short transactions.

An attempt downloads the job's input files, output file and error file (or writes an inline
job's ``outputs``) into ``results.dir/{job_id}/``, then reads them back into the ledger. A
failure that may pass (a reset, a cut body, a full disk) sends the job back to ``pending``
with an exponential backoff; a file gone upstream (404) makes it ``unavailable``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol, TypeVar

from batchwatch.errors import ApiError, LeaseLost, Stopping
from batchwatch.logs import get_logger
from batchwatch.models import RemoteJob, RequestCounts, ResultFile, TokenUsage, Transition
from batchwatch.results import files, ingest
from batchwatch.store import Store
from batchwatch.store import results as stored
from batchwatch.store.intents import created_with

log = get_logger("batchwatch.results")


_T = TypeVar("_T")


class IngestError(Exception):
    """The ledger could not be built this time (its process died, the database refused)."""


class Upstream(Protocol):
    """What the worker needs of a provider's client."""

    def file_content(self, file_id: str) -> Any: ...
    def inline_outputs(self, job_id: str) -> list[Any]: ...
    def pause(self, retry: int) -> bool: ...


@dataclass(frozen=True, slots=True)
class ResultsOptions:
    directory: Path
    concurrency: int = 2
    scan_seconds: float = 5.0
    #: Attempts of one job before it is given up as unavailable.
    max_attempts: int = 12
    #: Retries of one file within an attempt (a reset or a cut body), with backoff.
    file_retries: int = 3
    backoff_base: float = 30.0
    backoff_max: float = 3600.0


class ResultsWorker:
    def __init__(
        self,
        clients: Mapping[str, Upstream],
        store: Store,
        options: ResultsOptions,
        *,
        stop: threading.Event,
        on_problem: Callable[[str | None], None] | None = None,
        on_result: Callable[[str], None] | None = None,
        on_usage: Callable[[str | None, TokenUsage], None] | None = None,
        leader: Callable[[], tuple[str, int] | None] | None = None,
    ) -> None:
        """``leader`` (team mode, ``Team.token``): this daemon's name and lease epoch while
        it leads, else None; results are fetched by the leader only, its writes fenced."""
        #: Each provider's client, by name: a job's files come from its provider.
        self.clients = clients
        self.store = store
        self.options = options
        self.stop = stop
        self._on_problem = on_problem or (lambda _reason: None)
        self._on_result = on_result or (lambda _result: None)
        self._on_usage = on_usage or (lambda _model, _usage: None)
        self._pool = ThreadPoolExecutor(options.concurrency, thread_name_prefix="results")
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._ingester: ProcessPoolExecutor | None = None
        self._leader = leader

    def _leading(self) -> bool:
        return self._leader is None or self._leader() is not None

    def resume(self) -> None:
        """This daemon became the leader: attempts a stopped leader left ``downloading``
        are pending again, and the scan runs now."""
        stored.interrupted(self.store, _now())
        self._wake.set()

    def recorded(self, transitions: Sequence[Transition]) -> None:
        """A write committed these transitions: a job that ended is fetched now, not at the
        next scan (``Store.on_recorded``)."""
        if any(t.to_status.is_terminal for t in transitions):
            self._wake.set()

    def start(self) -> None:
        if self._leading():
            stored.interrupted(self.store, _now())
        self._thread = threading.Thread(target=self._loop, name="results-scan", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        self.stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._ingester is not None:
            self._ingester.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                self.scan(_now())
            except Exception as exc:  # the store down, say: logged, tried again next scan
                log.warning("results_scan_failed", error=str(exc))
            self._wake.wait(self.options.scan_seconds)
            self._wake.clear()

    def scan(self, now: datetime) -> list[str]:
        """Queue the jobs that ended; start an attempt for each due one not running."""
        if not self._leading():
            return []
        stored.queue_ended(self.store, now)
        with self._lock:
            free = self.options.concurrency - len(self._running)
            if free <= 0:
                return []
            started = [j for j in stored.due(self.store, now, free * 2) if j not in self._running]
            started = started[:free]
            self._running.update(started)
        for job_id in started:
            self._pool.submit(self._attempt, job_id)
        return started

    def _attempt(self, job_id: str) -> None:
        try:
            self.fetch(job_id)
        except Exception as exc:  # a bug must not kill the pool thread; the job stays visible
            log.exception("results_attempt_crashed", job_id=job_id, error=str(exc))
        finally:
            with self._lock:
                self._running.discard(job_id)
            self._wake.set()  # a slot is free: the next due job need not wait for the scan

    def fetch(self, job_id: str) -> str:
        """One attempt at ``job_id``'s results; returns the state it left the job in."""
        try:
            return self._fetch(job_id)
        except LeaseLost as exc:
            # Another daemon leads now: it makes the attempt pending again and makes its own.
            log.info("results_attempt_dropped", job_id=job_id, reason=str(exc))
            return "interrupted"

    def _fetch(self, job_id: str) -> str:
        now = _now()
        if not stored.start_attempt(self.store, job_id, now):
            return "skipped"
        job = self.store.get_job(job_id)
        assert job is not None  # a results row exists only for a stored job (foreign key)
        directory = self.options.directory / job_id
        client = self.clients.get(job.remote.provider)
        try:
            if client is None:
                raise IngestError(f"provider {job.remote.provider} is not configured")
            found = self._download(client, job.remote, directory)
            counts, usage, rows = self._ingest(job_id, job.remote.provider, found)
        except ApiError as exc:
            return self._failed(job_id, str(exc), gone=exc.status_code == 404)
        except IngestError as exc:
            return self._failed(job_id, str(exc))
        except Stopping:
            return "interrupted"  # left downloading; the next start makes it pending again
        except OSError as exc:
            self._on_problem(f"results.dir {self.options.directory}: {exc.strerror or exc}")
            return self._failed(job_id, f"cannot write results: {exc.strerror or exc}")
        stored.finish_ready(
            self.store, job_id, files=found, counts=counts, usage=usage, rows=rows, now=_now()
        )
        self._on_problem(None)
        self._on_result("ready")
        self._on_usage(job.remote.model, usage)
        log.info("results_ready", job_id=job_id, requests=counts.total, failed=counts.failed)
        return "ready"

    def _failed(self, job_id: str, reason: str, *, gone: bool = False) -> str:
        results = stored.job_results(self.store, job_id)
        attempts = results.attempts if results else 1
        if gone or attempts >= self.options.max_attempts:
            why = reason if gone else f"gave up after {attempts} attempts: {reason}"
            stored.finish_failed(self.store, job_id, why, _now(), retry_at=None)
            self._on_result("unavailable")
            log.warning("results_unavailable", job_id=job_id, reason=why)
            return "unavailable"
        delay = min(self.options.backoff_max, self.options.backoff_base * 2 ** (attempts - 1))
        retry_at = _now() + timedelta(seconds=delay)
        stored.finish_failed(self.store, job_id, reason, _now(), retry_at=retry_at)
        self._on_result("failed")
        log.warning("results_attempt_failed", job_id=job_id, reason=reason, retry_in=delay)
        return "pending"

    def _download(self, client: Upstream, job: RemoteJob, directory: Path) -> list[ResultFile]:
        directory.mkdir(parents=True, exist_ok=True)
        files.remove_parts(directory)
        found: list[ResultFile] = []
        for n, file_id in enumerate(job.input_files, start=1):
            name = "input.jsonl" if n == 1 else f"input-{n}.jsonl"
            found.append(self._file(client, "input", n, file_id, directory / name))
        inline = None if job.input_files else created_with(self.store, job.id)
        if inline and inline.get("requests"):
            # An inline job batchwatch created: its requests are in the create body, so the
            # ledger can tell the ones that never ran, and a retry can resend them.
            written = files.write_lines(directory / "input.jsonl", inline["requests"])
            found.append(_record("input", 1, None, written))
        if job.output_file:
            found.append(
                self._file(client, "output", 1, job.output_file, directory / "output.jsonl")
            )
        elif not job.input_files:  # an inline job: its outputs come with the job
            written = files.write_lines(directory / "output.jsonl", client.inline_outputs(job.id))
            found.append(_record("output", 1, None, written))
        if job.error_file:
            found.append(self._file(client, "error", 1, job.error_file, directory / "error.jsonl"))
        return found

    def _file(self, client: Upstream, kind: str, n: int, file_id: str, dest: Path) -> ResultFile:
        """One file, retried within the attempt when its body breaks on the way."""
        for retry in range(self.options.file_retries + 1):
            try:
                written = files.write_stream(dest, lambda: client.file_content(file_id))
                return _record(kind, n, file_id, written)
            except ApiError as exc:
                if not exc.retryable or retry == self.options.file_retries:
                    raise ApiError(
                        f"{kind} file {file_id}: {exc}",
                        status_code=exc.status_code,
                        retryable=exc.retryable,
                    ) from None
                log.info("results_download_retried", file_id=file_id, error=str(exc))
            if not client.pause(retry + 1):
                raise Stopping("shutting down")
        raise AssertionError("unreachable")

    def _ingest(
        self, job_id: str, provider: str, found: Sequence[ResultFile]
    ) -> tuple[RequestCounts, TokenUsage, dict[str, int]]:
        """The ledger of the downloaded files, built by the ingest process (``ingest.py``)."""
        with self._lock:
            if self._ingester is None:
                self._ingester = ProcessPoolExecutor(
                    1, mp_context=get_context("spawn"), initializer=ingest.start_child
                )
            pool = self._ingester
        fence = None
        if self._leader is not None:
            fence = self._leader()
            if fence is None:
                raise LeaseLost("this daemon is no longer the leader")
        try:
            future = pool.submit(
                ingest.ingest,
                self.store.url,
                job_id,
                [f.path for f in found if f.kind == "input"],
                next((f.path for f in found if f.kind == "output"), None),
                next((f.path for f in found if f.kind == "error"), None),
                provider=provider,
                fence=fence,
            )
            return self._wait(future)
        except BrokenProcessPool:
            with self._lock:  # the next attempt gets a new process
                if self._ingester is pool:
                    self._ingester = None
            raise IngestError("the ledger's process died while building it") from None
        except (Stopping, LeaseLost):
            raise
        except Exception as exc:  # the database locked or down, say: tried again later
            raise IngestError(f"building the ledger failed: {exc}") from None

    def _wait(self, future: Future[_T]) -> _T:
        while True:
            try:
                return future.result(timeout=0.5)
            except TimeoutError:
                if self.stop.is_set():
                    raise Stopping("shutting down") from None


def _record(kind: str, n: int, file_id: str | None, written: files.Written) -> ResultFile:
    return ResultFile(kind, n, file_id, written.bytes, written.sha256, str(written.path))


def _now() -> datetime:
    return datetime.now(UTC)
