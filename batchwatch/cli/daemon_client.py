"""The CLI's client of the running daemon's local API.

It speaks plain HTTP/1.1 to loopback with the standard library's ``http.client``: a CLI
command must answer in a fraction of a second, and importing ``requests`` alone costs about
150 ms. The daemon is on the same machine, so there are no transport retries here; a create
whose outcome is unknown is repeated under its Idempotency-Key instead (``create_once``).

Jobs are read through the Mistral-compatible ``/v1/batch/jobs`` routes, whatever their
provider; an OpenAI or Anthropic job is created (and its file uploaded) through that
provider's own routes on the daemon, in that provider's shapes.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from batchwatch.errors import ApiError
from batchwatch.models import FileInfo, JobStatus, RemoteJob
from batchwatch.providers.anthropic import wire as anthropic_wire
from batchwatch.providers.bodies import error_text
from batchwatch.providers.mistral.wire import job_to_json, parse_file, parse_job
from batchwatch.providers.openai import wire as openai_wire
from batchwatch.providers.retry import RetryPolicy


def _segment(value: str) -> str:
    return quote(value, safe="")


def tracked_job(item: Any) -> RemoteJob:
    """A job as the daemon's ``/v1/batch/jobs`` routes answer it (Mistral's job shape, its
    ``status`` the common one, plus ``provider`` and ``provider_status``) → ``RemoteJob``
    with the provider's own status as ``raw_status``, as a provider's ``wire`` reads it. A
    daemon from before providers sends neither field: its jobs are Mistral's."""
    job = parse_job(item)
    provider, raw = item.get("provider"), item.get("provider_status")
    return replace(
        job,
        provider=provider if isinstance(provider, str) else "mistral",
        raw_status=raw if isinstance(raw, str) else job.raw_status,
    )


def tracked_json(job: RemoteJob) -> dict[str, Any]:
    """The daemon's JSON of ``job`` (the inverse of ``tracked_job``, as the daemon's
    ``api.schemas.job_body`` writes it; that module loads pydantic): what an action command
    prints with ``--json``, whichever provider's route created the job. A Mistral job's
    ``status`` stays as Mistral sent it."""
    body = job_to_json(job)
    if job.provider != "mistral":
        body["status"] = job.status.value
    return {**body, "provider": job.provider, "provider_status": job.raw_status}


#: Each provider's create route on the daemon, in that provider's own shapes (its API's path
#: under the daemon's prefix for it), and the parser of its answer.
CREATE_ROUTES: dict[str, tuple[str, Callable[[Any], RemoteJob]]] = {
    "mistral": ("/v1/batch/jobs", tracked_job),
    "openai": ("/openai/v1/batches", openai_wire.parse_job),
    "anthropic": ("/anthropic/v1/messages/batches", anthropic_wire.parse_job),
}
#: The providers with a files API (Anthropic's requests go inline), as ``CREATE_ROUTES``.
UPLOAD_ROUTES: dict[str, tuple[str, Callable[[Any], FileInfo]]] = {
    "mistral": ("/v1/files", parse_file),
    "openai": ("/openai/v1/files", openai_wire.parse_file),
}


class LocalClient:
    def __init__(
        self, base_url: str, token: str, *, timeout: float = 120.0, client_name: str = "cli"
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the daemon's URL must be http://host:port, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._timeout = timeout
        #: How long to wait before repeating an unconfirmed create: the daemon's own rule.
        self.retry_policy = RetryPolicy()
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "X-Batchwatch-Client": client_name,
        }

    # ---- jobs and files: the Mistral-compatible routes, and each provider's own -----------

    def list_json(
        self,
        statuses: Sequence[JobStatus] = (),
        model: str | None = None,
        limit: int = 1000,
        provider: str | None = None,
    ) -> list[dict[str, Any]]:
        """The tracked jobs as the daemon answers them (``batchwatch jobs --json``)."""
        query: list[tuple[str, str]] = [("page_size", str(limit))]
        query += [("status", status.value) for status in statuses]
        query += [(k, v) for k, v in (("model", model), ("provider", provider)) if v is not None]
        return self._data("list_jobs", f"/v1/batch/jobs?{urlencode(query)}")

    def list_tracked(
        self,
        statuses: Sequence[JobStatus] = (),
        model: str | None = None,
        limit: int = 1000,
        provider: str | None = None,
    ) -> list[RemoteJob]:
        return [tracked_job(item) for item in self.list_json(statuses, model, limit, provider)]

    def job_json(self, job_id: str) -> dict[str, Any]:
        return dict(self._json("get_job", "GET", f"/v1/batch/jobs/{_segment(job_id)}"))

    def get_job(self, job_id: str) -> RemoteJob:
        return tracked_job(self.job_json(job_id))

    def cancel_job(self, job_id: str) -> RemoteJob:
        path = f"/v1/batch/jobs/{_segment(job_id)}/cancel"
        return tracked_job(self._json("cancel_job", "POST", path))

    def create_once(
        self, body: Mapping[str, Any], key: str, attempts: int = 3, provider: str = "mistral"
    ) -> RemoteJob:
        """Create under ``key`` from ``provider``'s create body as plain JSON (the daemon
        validates it); an attempt whose outcome is unknown is repeated under the same key,
        which the daemon turns into at most one job."""
        path, parse = CREATE_ROUTES[provider]
        payload = json.dumps(body).encode()
        headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
        for attempt in range(attempts):
            try:
                return parse(self._json("create_job", "POST", path, payload, headers))
            except ApiError as exc:
                if not RetryPolicy.outcome_unknown(exc.status_code) or attempt == attempts - 1:
                    raise
                self.retry_policy.pause(attempt + 1)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def upload_file(
        self, path: Path, purpose: str = "batch", provider: str = "mistral"
    ) -> FileInfo:
        """Upload ``path`` to ``provider``'s files API through the daemon (a multipart form of
        ``purpose`` and ``file``, as Mistral's and OpenAI's APIs both take it)."""
        import uuid

        route, parse = UPLOAD_ROUTES[provider]

        boundary = uuid.uuid4().hex
        content = path.read_bytes()
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n'
            f"{purpose}\r\n".encode(),
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{path.name}"\r\nContent-Type: application/jsonl\r\n\r\n'.encode(),
            content,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        return parse(self._json("upload_file", "POST", route, b"".join(parts), headers))

    # ---- batchwatch's own routes --------------------------------------------------------

    def transitions(self, job_id: str) -> list[dict[str, Any]]:
        return self._data("transitions", f"/v1/batch/jobs/{_segment(job_id)}/transitions")

    def progress(self, job_id: str) -> list[dict[str, Any]]:
        return self._data("progress", f"/v1/batch/jobs/{_segment(job_id)}/progress")

    def actions(self, job_id: str) -> list[dict[str, Any]]:
        return self._data("actions", f"/v1/batch/jobs/{_segment(job_id)}/actions")

    def track(self, job_id: str) -> RemoteJob:
        return tracked_job(self._json("track", "POST", f"/v1/batch/jobs/{_segment(job_id)}/track"))

    def results(self, job_id: str) -> dict[str, Any]:
        return dict(self._json("results", "GET", f"/v1/batch/jobs/{_segment(job_id)}/results"))

    def requests(
        self, job_id: str, outcomes: Sequence[str] = (), page: int = 0, page_size: int = 1000
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of the job's ledger, and how many rows match."""
        query = [("page", str(page)), ("page_size", str(page_size))]
        query += [("outcome", outcome) for outcome in outcomes]
        path = f"/v1/batch/jobs/{_segment(job_id)}/requests?{urlencode(query)}"
        body = self._json("requests", "GET", path)
        return list(body.get("data") or []), int(body.get("total") or 0)

    def children(self, job_id: str) -> list[RemoteJob]:
        """The jobs a retry of ``job_id`` created (tagged ``batchwatch_parent``)."""
        query = urlencode({"page_size": "1000", "batchwatch_parent": job_id})
        return [tracked_job(item) for item in self._data("list_jobs", f"/v1/batch/jobs?{query}")]

    def retry(self, job_id: str, only: Sequence[str], key: str | None = None) -> RemoteJob:
        payload = json.dumps({"only": list(only)}).encode()
        headers = {"Content-Type": "application/json", **({"Idempotency-Key": key} if key else {})}
        path = f"/v1/batch/jobs/{_segment(job_id)}/retry"
        return tracked_job(self._json("retry", "POST", path, payload, headers))

    def delete(self, job_id: str, *, force: bool) -> dict[str, Any]:
        path = f"/v1/batch/jobs/{_segment(job_id)}" + ("?force=true" if force else "")
        return dict(self._json("delete_job", "DELETE", path))

    def usage(self, since: str | None, group_by: str | None) -> list[dict[str, Any]]:
        query = {k: v for k, v in (("since", since), ("group_by", group_by)) if v}
        return self._data("usage", f"/v1/usage?{urlencode(query)}")

    def events(
        self, after: int, types: Sequence[str] = (), limit: int = 100, wait: float = 0
    ) -> dict[str, Any]:
        """One read of the event feed: ``{data, next_after, newest_seq}``. With ``wait``,
        the daemon holds the request until an event comes or the seconds are up."""
        query = [("after", str(after)), ("limit", str(limit)), ("wait", f"{wait:g}")]
        query += [("type", t) for t in types]
        return dict(self._json("events", "GET", f"/v1/events?{urlencode(query)}"))

    def webhooks(self) -> list[dict[str, Any]]:
        return self._data("webhooks", "/v1/webhooks")

    def redeliver(self, event_id: str) -> dict[str, Any]:
        path = f"/v1/webhooks/deliveries/{_segment(event_id)}/redeliver"
        return dict(self._json("redeliver", "POST", path))

    # ---- plumbing -----------------------------------------------------------------------

    def _data(self, operation: str, path: str) -> list[dict[str, Any]]:
        body = self._json(operation, "GET", path)
        return list(body.get("data") or [])

    def _json(
        self,
        operation: str,
        method: str,
        path: str,
        payload: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        status, raw = self._send(operation, method, path, payload, headers)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw[:200].decode(errors="replace")
        if status >= 400:
            detail = error_text(body)
            raise ApiError(
                f"{operation}: HTTP {status}{': ' + detail if detail else ''}",
                status_code=status,
                retryable=status in (502, 503, 504),
                body=body,
            )
        if not isinstance(body, dict):
            raise ApiError(
                f"{operation}: the daemon sent no JSON object", status_code=status, retryable=True
            )
        return body

    def _send(
        self,
        operation: str,
        method: str,
        path: str,
        payload: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        try:
            conn.request(method, path, body=payload, headers={**self._headers, **(headers or {})})
            response = conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ApiError(f"{operation}: {reason or type(exc).__name__}", retryable=True) from None
        finally:
            conn.close()
