"""HTTP to a provider (or its simulator): sessions, auth, timeouts, the retry policy put to
work, and the mapping of every failure to one ``ApiError`` that says whether a retry can help.

What is retried and how long to wait is ``RetryPolicy``'s (``retry.py``); urllib3 carries it
out for failures before the body is read, ``HttpApi._json`` for a body that broke on the way.
A ``Retry-After`` (parsed by urllib3) holds every later request of the client, and the
daemon's stop event cuts every wait short.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Self
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from batchwatch import __version__
from batchwatch.errors import ApiError, Stopping
from batchwatch.providers.bodies import error_text
from batchwatch.providers.retry import RETRYABLE_STATUS, RetryPolicy, wait

#: Called after every HTTP exchange: (operation, status code or None when no response came).
Observer = Callable[[str, int | None], None]


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
        """Sleep ``at_least`` seconds and until the gate opens; ``Stopping`` when the stop
        event cuts it."""
        deadline = time.monotonic() + at_least
        while (delay := max(deadline - time.monotonic(), self.remaining())) > 0:
            if not wait(delay, self._stop):
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

    def retry_after(self, response: BaseHTTPResponse | None) -> float | None:
        """The response's ``Retry-After`` in seconds, by urllib3's parser; None when absent
        or unreadable (then the backoff applies)."""
        if response is None or not self.respect_retry_after_header:
            return None
        try:
            return self.get_retry_after(response)
        except InvalidHeader:
            return None

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        if self.gate is not None and self.gate.on_retry is not None:
            self.gate.on_retry(str(response.status) if response is not None else "connection")
        delay = self.retry_after(response)
        if delay is not None and self.gate is not None:
            self.gate.hold(delay)
        if delay is None:
            delay = self.get_backoff_time()
        if self.gate is None:
            time.sleep(max(delay, 0.0))
        else:
            self.gate.wait(delay)


def _urllib3_retry(
    policy: RetryPolicy, gate: _Gate, methods: Iterable[str], *, unsent_only: bool = False
) -> _StoppableRetry:
    """``policy`` as urllib3's Retry for requests of ``methods``. With ``unsent_only`` (a
    create, an upload), only failures that prove the request never arrived (connection
    refused) are retried: the server may have acted on anything else."""
    common: dict[str, Any] = {
        "total": policy.attempts,
        "backoff_factor": policy.backoff_factor,
        "backoff_max": policy.backoff_max,
        "backoff_jitter": policy.jitter,
        "raise_on_status": False,
    }
    if unsent_only:
        retry = _StoppableRetry(
            connect=policy.attempts, read=0, status=0, other=0, allowed_methods=None, **common
        )
    else:
        retry = _StoppableRetry(
            status_forcelist=sorted(RETRYABLE_STATUS),
            allowed_methods=frozenset(methods),
            respect_retry_after_header=True,
            **common,
        )
    retry.gate = gate
    return retry


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
    """Sessions, auth, timeouts, retries and error mapping of a provider's client."""

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
        wait_with: HttpApi | None = None,
    ) -> None:
        """``wait_with``: another client of the same upstream whose ``Retry-After`` waits
        this one shares, both ways (the daemon's poller, its actions and its downloads)."""
        policy = self.retry_policy = retry or RetryPolicy()
        agent = f"batchwatch/{__version__}"
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._observer = observer
        self._gate: _Gate = wait_with._gate if wait_with is not None else _Gate(stop, on_retry)
        # POST /cancel is idempotent upstream, so it may be retried like a read.
        self._retry = _urllib3_retry(policy, self._gate, ("GET", "DELETE", "POST"))
        self._session = _session(self.base_url, self._retry, pool_size, agent)
        once = _urllib3_retry(policy, self._gate, (), unsent_only=True)
        self._once = _session(self.base_url, once, 2, agent)
        for session in (self._session, self._once):
            session.headers.update(headers or {})
            if api_key:
                session.headers.update(self.auth_headers(api_key))

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """How the provider takes its key: a bearer token (Mistral, OpenAI)."""
        return {"Authorization": f"Bearer {api_key}"}

    def held_seconds(self) -> float:
        """How long the upstream's last ``Retry-After`` still holds every request (0: none)."""
        return max(0.0, self._gate.remaining())

    def close(self) -> None:
        self._session.close()
        self._once.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def pause(self, retry: int) -> bool:
        """Wait the policy's backoff before retry number ``retry``, and any ``Retry-After``
        still running; False when shutdown cut the wait (then give up, do not retry)."""
        try:
            self._gate.wait(self.retry_policy.backoff(retry))
        except Stopping:
            return False
        return True

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
        if response.status_code in Retry.RETRY_AFTER_STATUS_CODES:
            # Retries ran out on this one; the next call still has to respect the wait.
            self._gate.hold(self._retry.retry_after(response.raw) or 0.0)
        if response.status_code >= 400:
            raise _http_error(operation, response)
        return response

    def _upload(self, filename: str, content: Any, purpose: str) -> Any:
        """``POST /v1/files``, multipart (Mistral's and OpenAI's Files API take the same
        form): the decoded answer. Sent once: an upload is not resent blindly."""
        return self._json(
            "upload_file", "POST", "/v1/files", once=True,
            files={"file": (filename, content, "application/jsonl")}, data={"purpose": purpose},
        )  # fmt: skip

    def _file_stream(
        self, file_id: str, chunk_bytes: int
    ) -> AbstractContextManager[Iterator[bytes]]:
        """``GET /v1/files/{file_id}/content``, streamed (Mistral's and OpenAI's)."""
        return self._stream("download_file", f"/v1/files/{segment(file_id)}/content", chunk_bytes)

    def _json(self, operation: str, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded JSON body. A read whose body broke on the way (cut short, or not
        JSON) is sent again, up to the retry policy's attempts, with its backoff: urllib3
        retries only what fails before the body is read."""
        attempts = self.retry_policy.attempts if method == "GET" else 0
        for attempt in range(attempts + 1):
            try:
                return self._decode(operation, self._call(operation, method, path, **kwargs))
            except _BrokenBody:
                if attempt == attempts:
                    raise
            if self._gate.on_retry is not None:
                self._gate.on_retry("body")
            if not self.pause(attempt):
                raise ApiError(f"{operation}: abandoned, shutting down", retryable=True)
        raise AssertionError("unreachable")

    @contextmanager
    def _stream(self, operation: str, path: str, chunk_bytes: int) -> Iterator[Iterator[bytes]]:
        """A GET whose body is read a chunk at a time, never whole. Failures before the
        body are retried as for any read; a body that breaks on the way raises a retryable
        ``ApiError`` from the iterator (the caller starts again: a part is never a file)."""
        response = self._call(
            operation, "GET", path, accept="application/octet-stream", stream=True
        )
        try:
            yield _chunks(operation, response, chunk_bytes)
        finally:
            response.close()

    @staticmethod
    def _decode(operation: str, response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise _BrokenBody(
                f"{operation}: the server sent a body that is not JSON "
                f"(HTTP {response.status_code}, {len(response.content)} bytes)",
                status_code=response.status_code,
                retryable=True,
            ) from None

    def _observe(self, operation: str, status: int | None) -> None:
        if self._observer is not None:
            self._observer(operation, status)


def segment(value: str) -> str:
    """``value`` as one segment of a URL path (an id holding ``/`` cannot change the route)."""
    return quote(value, safe="")


def _chunks(operation: str, response: requests.Response, size: int) -> Iterator[bytes]:
    try:
        yield from response.iter_content(chunk_size=size)
    except requests.RequestException as exc:  # reset, cut short, a read timing out
        raise _BrokenBody(f"{operation}: {type(exc).__name__}: {exc}", retryable=True) from None


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
        retryable=RetryPolicy.retryable(response.status_code),
        body=body,
    )
