"""The only module that speaks HTTP: to Mistral (or the simulator), and to the local daemon.

JSON is parsed into typed records here, at the edge; the rest of batchwatch never sees a
raw response. Every failure becomes one ``ApiError`` that says whether a retry can help.
"""

from __future__ import annotations

import email.utils
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from batchwatch import __version__
from batchwatch.errors import ApiError, Stopping
from batchwatch.models import (
    FileInfo,
    JobPage,
    ListFilter,
    RemoteJob,
)
from batchwatch.providers.mistral.wire import (
    CreateRequest,
    SharedMetadata,
    error_text,
    job_to_json,
    list_params,
    parse_file,
    parse_job,
)

__all__ = [
    "ApiError",
    "CreateRequest",
    "MistralClient",
    "RetryPolicy",
    "job_to_json",
]

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})

#: Called after every HTTP exchange: (operation, status code or None when no response came).
Observer = Callable[[str, int | None], None]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter; urllib3 honours ``Retry-After`` on 429 and 503."""

    attempts: int = 4
    backoff_factor: float = 0.5
    backoff_max: float = 30.0
    jitter: float = 0.5

    def backoff(self, retry: int) -> float:
        """Seconds before retry number ``retry`` (0-based), as urllib3 counts them: the
        first retry goes at once, then ``backoff_factor * 2**retry`` plus jitter, capped."""
        if retry == 0:
            return 0.0
        return min(
            self.backoff_max, self.backoff_factor * 2.0**retry + random.uniform(0, self.jitter)
        )




class _Gate:
    """When the server said ``Retry-After``, no request leaves before it has passed, from
    any thread or session of the client: a retry inside urllib3, the next page of a
    concurrent listing, the next poll cycle."""

    def __init__(
        self, stop: threading.Event | None, on_retry: Callable[[str], None] | None = None
    ) -> None:
        self._stop = stop
        self.on_retry = on_retry
        self._lock = threading.Lock()
        self._until = 0.0  # time.monotonic() before which nothing is sent

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, time.monotonic() + seconds)

    def remaining(self) -> float:
        with self._lock:
            return self._until - time.monotonic()

    def wait(self, at_least: float = 0.0) -> None:
        """Sleep ``at_least`` seconds and until the gate opens; the stop event cuts it."""
        deadline = time.monotonic() + at_least
        while True:
            delay = max(deadline - time.monotonic(), self.remaining())
            if delay <= 0:
                return
            if self._stop is None:
                time.sleep(delay)
            elif self._stop.wait(delay):
                raise Stopping("shutting down")


class _BrokenBody(ApiError):
    """The response's headers arrived but its body broke off (connection reset, cut short)."""


#: Failures while the body is read, after urllib3 handed the response over: its Retry never
#: sees them, so ``_json`` retries a read that ends in one.
_BODY_ERRORS = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


class _StoppableRetry(Retry):
    """urllib3's Retry, whose waits (backoff or ``Retry-After``) go through the client's
    gate: a ``Retry-After`` holds every request, and a shutdown ends the wait at once."""

    gate: _Gate | None = None

    def new(self, **kw: Any) -> Self:
        fresh = super().new(**kw)
        fresh.gate = self.gate
        return fresh

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        if self.gate is not None and self.gate.on_retry is not None:
            self.gate.on_retry(str(response.status) if response is not None else "connection")
        delay: float | None = None
        if self.respect_retry_after_header and response is not None:
            delay = self.get_retry_after(response)
            if delay is not None and self.gate is not None:
                self.gate.hold(delay)
        if delay is None:
            delay = self.get_backoff_time()
        if self.gate is None:
            time.sleep(max(delay, 0.0))
        else:
            self.gate.wait(delay)


def _retry(
    policy: RetryPolicy,
    methods: Iterable[str],
    gate: _Gate,
    *,
    unsent_only: bool = False,
) -> Retry:
    retry = _make_retry(policy, methods, unsent_only=unsent_only)
    retry.gate = gate
    return retry


def _make_retry(
    policy: RetryPolicy, methods: Iterable[str], *, unsent_only: bool
) -> _StoppableRetry:
    if unsent_only:
        # A create must not be resent once the server may have acted on it: only retry
        # failures that prove the request never arrived (connection refused).
        return _StoppableRetry(
            total=policy.attempts,
            connect=policy.attempts,
            read=0,
            status=0,
            other=0,
            allowed_methods=None,
            raise_on_status=False,
            backoff_factor=policy.backoff_factor,
            backoff_max=policy.backoff_max,
            backoff_jitter=policy.jitter,
        )
    return _StoppableRetry(
        total=policy.attempts,
        backoff_factor=policy.backoff_factor,
        backoff_max=policy.backoff_max,
        backoff_jitter=policy.jitter,
        status_forcelist=sorted(RETRYABLE_STATUS),
        allowed_methods=frozenset(methods),
        respect_retry_after_header=True,
        raise_on_status=False,
    )


def _session(base_url: str, retry: Retry, pool_size: int, user_agent: str) -> requests.Session:
    session = requests.Session()
    # requests reads the proxy variables, the CA bundle variables and ~/.netrc again for every
    # request (about a tenth of a list page's client time). Every request here goes to one
    # base URL, so they are read once, now; and a ~/.netrc entry can no longer replace the
    # bearer token with its own credentials.
    found = session.merge_environment_settings(base_url, {}, None, None, None)
    session.proxies.update(found["proxies"])
    if base_url.startswith("https:"):
        session.verify = found["verify"]  # a CA bundle path is checked on every request
    session.trust_env = False
    adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = user_agent
    session.headers["Accept"] = "application/json"
    return session


class HttpApi:
    """Sessions, auth, timeouts, retries and error mapping shared by both clients."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        pool_size: int = 8,
        observer: Observer | None = None,
        stop: threading.Event | None = None,
        headers: Mapping[str, str] | None = None,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        policy = self._policy = retry or RetryPolicy()
        agent = f"batchwatch/{__version__}"
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._observer = observer
        self._gate = _Gate(stop, on_retry)
        # POST /cancel is idempotent upstream, so it may be retried like a read.
        retried = _retry(policy, ("GET", "DELETE", "POST"), self._gate)
        self._session = _session(self.base_url, retried, pool_size, agent)
        self._once = _session(
            self.base_url, _retry(policy, (), self._gate, unsent_only=True), 2, agent
        )
        for session in (self._session, self._once):
            session.headers.update(headers or {})
            if api_key:
                session.headers["Authorization"] = f"Bearer {api_key}"

    def close(self) -> None:
        self._session.close()
        self._once.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        once: bool = False,
        accept: str | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        session = self._once if once else self._session
        headers = dict(kwargs.pop("headers", None) or {})
        if accept:
            headers["Accept"] = accept
        try:
            self._gate.wait()
            response = session.request(
                method, self.base_url + path, timeout=self._timeout, headers=headers, **kwargs
            )
        except _BODY_ERRORS as exc:
            self._observe(operation, None)
            raise _BrokenBody(f"{operation}: {type(exc).__name__}: {exc}", retryable=True) from None
        except requests.RequestException as exc:
            self._observe(operation, None)
            raise _transport_error(operation, exc) from None
        except Stopping:
            raise ApiError(f"{operation}: abandoned, shutting down", retryable=True) from None
        self._observe(operation, response.status_code)
        if response.status_code in (429, 503):
            # Retries ran out on this one; the next call still has to respect the wait.
            self._gate.hold(_retry_after(response.headers.get("Retry-After")))
        if response.status_code >= 400:
            raise _http_error(operation, response)
        return response

    def _json(self, operation: str, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded JSON body. A read whose body broke on the way (cut short, or not
        JSON) is sent again, up to the retry policy's attempts, with its backoff: urllib3
        retries only what fails before the body is read."""
        attempts = self._policy.attempts if method == "GET" else 0
        for attempt in range(attempts + 1):
            try:
                response = self._call(operation, method, path, **kwargs)
            except _BrokenBody as exc:
                broken: ApiError = exc
            else:
                try:
                    return response.json()
                except ValueError:
                    broken = ApiError(
                        f"{operation}: the server sent a body that is not JSON "
                        f"(HTTP {response.status_code}, {len(response.content)} bytes)",
                        status_code=response.status_code,
                        retryable=True,
                    )
            if attempt == attempts:
                raise broken
            if self._gate.on_retry is not None:
                self._gate.on_retry("body")
            try:
                self._gate.wait(self._policy.backoff(attempt))
            except Stopping:
                raise ApiError(f"{operation}: abandoned, shutting down", retryable=True) from None
        raise AssertionError("unreachable")

    def _observe(self, operation: str, status: int | None) -> None:
        if self._observer is not None:
            self._observer(operation, status)


def _retry_after(value: str | None) -> float:
    """Seconds from a Retry-After header (a number or an HTTP date); 0 when absent or bad."""
    if not value:
        return 0.0
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _transport_error(operation: str, exc: requests.RequestException) -> ApiError:
    kind = type(exc).__name__
    if isinstance(exc, requests.exceptions.RetryError):
        return ApiError(f"{operation}: gave up after retries ({exc})", retryable=True)
    return ApiError(f"{operation}: {kind}: {exc}", retryable=True)


def _http_error(operation: str, response: requests.Response) -> ApiError:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:500]
    detail = error_text(body)
    return ApiError(
        f"{operation}: HTTP {response.status_code}{': ' + detail if detail else ''}",
        status_code=response.status_code,
        retryable=response.status_code in RETRYABLE_STATUS,
        body=body,
    )


class MistralClient(HttpApi):
    """Mistral's batch and files operations, each a method that returns typed records."""

    def list_page(self, flt: ListFilter, page: int, page_size: int = 100) -> JobPage:
        # Mistral: jobs_api_routes_batch_get_batch_jobs (GET /v1/batch/jobs)
        body = self._json(
            "list_jobs", "GET", "/v1/batch/jobs", params=list_params(flt, page, page_size)
        )
        if not isinstance(body, dict) or not isinstance(body.get("total"), int):
            raise ApiError("list_jobs: response has no integer 'total'", retryable=True)
        data = body.get("data") or []
        if not isinstance(data, list):
            raise ApiError("list_jobs: 'data' is not a list", retryable=True)
        jobs: list[RemoteJob] = []
        shared: SharedMetadata = {}
        for item in data:
            try:
                jobs.append(parse_job(item, shared))
            except ApiError:
                continue  # counted below; the caller reconciles the job some other way
        return JobPage(jobs=tuple(jobs), total=body["total"], malformed=len(data) - len(jobs))

    def list_all(
        self,
        flt: ListFilter,
        page_size: int = 100,
        concurrency: int = 1,
    ) -> JobPage:
        """Every job matching ``flt``: the first page gives ``total``, the rest are fetched
        ``concurrency`` at a time. A job seen on two pages (the list shifted while it was
        read) is kept once; the one missed by a shift is the caller's to reconcile."""
        first = self.list_page(flt, 0, page_size)
        pages = max(1, math.ceil(first.total / page_size))
        seen: dict[str, RemoteJob] = {}
        malformed = 0

        def take(page: JobPage) -> None:
            nonlocal malformed
            malformed += page.malformed
            for job in page.jobs:
                if job.id not in seen:
                    seen[job.id] = job

        take(first)
        if pages > 1:
            with ThreadPoolExecutor(max_workers=min(concurrency, pages - 1)) as pool:
                for page in pool.map(lambda n: self.list_page(flt, n, page_size), range(1, pages)):
                    take(page)
        return JobPage(jobs=tuple(seen.values()), total=first.total, malformed=malformed)

    def get_job(self, job_id: str) -> RemoteJob:
        # Mistral: jobs_api_routes_batch_get_batch_job (GET /v1/batch/jobs/{job_id})
        return parse_job(self._json("get_job", "GET", f"/v1/batch/jobs/{_segment(job_id)}"))

    def create_job(
        self, request: CreateRequest, headers: Mapping[str, str] | None = None
    ) -> RemoteJob:
        # Mistral: jobs_api_routes_batch_create_batch_job (POST /v1/batch/jobs); 200, not 201
        body = self._json(
            "create_job",
            "POST",
            "/v1/batch/jobs",
            json=request.to_json(),
            once=True,
            headers=dict(headers or {}),
        )
        return parse_job(body)

    def cancel_job(self, job_id: str) -> RemoteJob:
        # Mistral: jobs_api_routes_batch_cancel_batch_job (POST /v1/batch/jobs/{id}/cancel)
        path = f"/v1/batch/jobs/{_segment(job_id)}/cancel"
        return parse_job(self._json("cancel_job", "POST", path))

    def upload_file(self, path: Path, purpose: str = "batch") -> FileInfo:
        # Mistral: files_api_routes_upload_file (POST /v1/files, multipart)
        with path.open("rb") as fh:
            body = self._json(
                "upload_file",
                "POST",
                "/v1/files",
                once=True,
                files={"file": (path.name, fh, "application/jsonl")},
                data={"purpose": purpose},
            )
        return parse_file(body)

    def upload_content(self, filename: str, content: bytes, purpose: str) -> dict[str, Any]:
        """Upload bytes and return Mistral's file object as sent (the local API relays it)."""
        # Mistral: files_api_routes_upload_file (POST /v1/files, multipart)
        body = self._json(
            "upload_file",
            "POST",
            "/v1/files",
            once=True,
            files={"file": (filename, content, "application/jsonl")},
            data={"purpose": purpose},
        )
        parse_file(body)  # a malformed answer fails here, at the edge
        return dict(body)

    def download_file(self, file_id: str) -> bytes:
        # Mistral: files_api_routes_download_file (GET /v1/files/{file_id}/content)
        response = self._call(
            "download_file",
            "GET",
            f"/v1/files/{_segment(file_id)}/content",
            accept="application/octet-stream",
        )
        return response.content


def _segment(value: str) -> str:
    return quote(value, safe="")
