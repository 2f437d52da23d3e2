"""Acting on jobs through batchwatch: create (never twice), cancel, track.

Every action goes upstream, then its result is recorded (job snapshot, transition, action
log) in one transaction before the caller gets an answer.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from batchwatch.errors import ActionError, ApiError
from batchwatch.logs import get_logger
from batchwatch.models import (
    ActionRecord,
    CreateIntent,
    IntentState,
    JobOrigin,
    JobStatus,
    RemoteJob,
    StoredJob,
)
from batchwatch.providers import provider as provider_entry
from batchwatch.providers import provider_of_id
from batchwatch.providers.base import CreateRequest, ProviderClient
from batchwatch.providers.mistral.client import REQUEST_TAG
from batchwatch.providers.retry import RetryPolicy
from batchwatch.store import Store, Writer, intents
from batchwatch.transitions import plan

log = get_logger("batchwatch.actions")

__all__ = ["REQUEST_TAG", "Actions", "ProviderActions", "request_hash"]


def request_hash(request: CreateRequest) -> str:
    """Same body, same hash, whatever the key order: what a reused key is compared by."""
    canonical = json.dumps(request.to_json(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class ProviderActions:
    """The actions on one provider's jobs, through its ``client``."""

    client: ProviderClient
    store: Store
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    #: Attempts at a create whose outcome stays unknown (the client's retry policy says
    #: which outcome is unknown, and how long to wait before the next attempt).
    create_attempts: int = 3
    #: How far before the intent a tagged job is looked for (clocks differ a little).
    search_margin: timedelta = timedelta(minutes=2)
    _locks: dict[str, threading.Lock] = field(default_factory=dict, repr=False)
    _locks_guard: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # ---- create ------------------------------------------------------------------------

    @property
    def upstream(self) -> str:
        """The provider's name as users know it (Mistral, OpenAI, Anthropic)."""
        return provider_entry(self.client.provider).label

    def create(self, request: CreateRequest, key: str | None, requested_by: str) -> StoredJob:
        """Create a job at most once per ``key`` (a fresh key when None)."""
        reserved = self.client.reserved(request)
        if reserved is not None:
            raise ActionError(422, f"{reserved} is reserved for batchwatch")
        key = key or f"auto-{uuid.uuid4()}"
        digest = request_hash(request)
        with self._key_lock(key):
            intent, fresh = intents.claim_intent(
                self.store,
                key,
                request_id=str(uuid.uuid4()),
                request_hash=digest,
                body=request.to_json(),
                requested_by=requested_by,
                now=self.clock(),
            )
            if intent.request_hash != digest:
                raise ActionError(
                    409,
                    f"Idempotency-Key {key!r} was already used with a different request "
                    "body; use a new key for a new job",
                )
            if intent.state is IntentState.CREATED and intent.job_id:
                return self._existing(intent.job_id)
            if intent.state is IntentState.FAILED:
                intents.retry_failed_intent(self.store, key, self.clock())
            return self._create_upstream(request, intent, search_first=not fresh)

    def _create_upstream(
        self, request: CreateRequest, intent: CreateIntent, search_first: bool
    ) -> StoredJob:
        tagged = self.client.tagged(request, intent.request_id)
        last: ApiError | None = None
        for attempt in range(self.create_attempts):
            # Before any resend, look for the job the earlier attempt may have created.
            if attempt > 0 or search_first:
                found = self._find_tagged(intent, request)
                if found is not None:
                    log.info("create_adopted", job_id=found.id, key=intent.key)
                    return self._record_create(intent, found)
            try:
                # The provider's create (Mistral: POST /v1/batch/jobs), sent once.
                job = self.client.create_job(tagged)
            except ApiError as exc:
                if not RetryPolicy.outcome_unknown(exc.status_code):
                    intents.fail_intent(
                        self.store, intent.key, exc.status_code, exc.message, self.clock()
                    )
                    raise ActionError(
                        local_status(exc), f"{self.upstream} refused the create: {exc.message}"
                    ) from None
                last = exc
                log.warning(
                    "create_outcome_unknown", key=intent.key, attempt=attempt + 1, error=exc.message
                )
                # Shutdown cuts the wait short: the caller is told the create is unconfirmed.
                if not self.client.pause(attempt + 1):
                    break
                continue
            return self._record_create(intent, job)
        found = self._find_tagged(intent, request)
        if found is not None:
            return self._record_create(intent, found)
        raise ActionError(
            503,
            f"{self.upstream} did not confirm the create "
            f"({last.message if last else 'no answer'}); "
            "retry with the same Idempotency-Key: batchwatch will find the job if it was "
            "created, and create it otherwise",
        )

    def _find_tagged(self, intent: CreateIntent, request: CreateRequest) -> RemoteJob | None:
        since = intent.created_at - self.search_margin
        try:
            return self.client.find_created(intent.request_id, since, request)
        except ApiError as exc:
            raise ActionError(
                503,
                f"cannot check {self.upstream} for an earlier attempt: "
                f"{exc.message}; retry with the same Idempotency-Key",
            ) from None

    def _record_create(self, intent: CreateIntent, job: RemoteJob) -> StoredJob:
        now = self.clock()
        with self.store.write() as writer:
            self._record(
                writer,
                job,
                now=now,
                action="create",
                origin=JobOrigin.CREATED,
                by=intent.requested_by,
            )
            intents.finish_intent(writer, intent.key, job.id, now)
        log.info("job_created", job_id=job.id, key=intent.key, by=intent.requested_by)
        return self._existing(job.id)

    # ---- cancel and track --------------------------------------------------------------

    def cancel(self, job_id: str, requested_by: str) -> StoredJob:
        stored = self.store.get_job(job_id)
        if stored is not None and stored.status.is_terminal:
            if stored.status is JobStatus.CANCELLED:
                return stored  # already cancelled: nothing to do, nothing to fail
            raise ActionError(409, f"job {job_id} already ended: it is {stored.status.value}")
        try:
            # Mistral: jobs_api_routes_batch_cancel_batch_job (POST .../{job_id}/cancel)
            job = self.client.cancel_job(job_id)
        except ApiError as exc:
            if exc.status_code == 404:
                raise ActionError(404, f"{self.upstream} has no job {job_id}") from None
            if exc.status_code == 400:
                # Upstream says it cannot be cancelled: it ended before we saw it end.
                ended = self._fetch(job_id)
                self._record_now(ended, "track", JobOrigin.TRACKED, requested_by)
                raise ActionError(
                    409, f"job {job_id} already ended: it is {ended.raw_status}"
                ) from None
            raise ActionError(local_status(exc), f"cancel failed: {exc.message}") from None
        self._record_now(job, "cancel", JobOrigin.TRACKED, requested_by)
        log.info("job_cancel_requested", job_id=job_id, by=requested_by, status=job.raw_status)
        return self._existing(job_id)

    def track(self, job_id: str, requested_by: str) -> StoredJob:
        job = self._fetch(job_id)
        self._record_now(job, "track", JobOrigin.TRACKED, requested_by)
        log.info("job_tracked", job_id=job_id, by=requested_by, status=job.raw_status)
        return self._existing(job_id)

    def upload(self, filename: str, content: bytes, purpose: str) -> dict[str, Any]:
        upload = getattr(self.client, "upload_content", None)
        if upload is None:
            raise ActionError(404, f"{self.upstream} has no files API: requests go inline")
        try:
            # The provider's files API (Mistral, OpenAI: POST /v1/files)
            result: dict[str, Any] = upload(filename, content, purpose)
            return result
        except ApiError as exc:
            raise ActionError(local_status(exc), f"upload failed: {exc.message}") from None

    # ---- recording ---------------------------------------------------------------------

    def _fetch(self, job_id: str) -> RemoteJob:
        try:
            # The provider's get (Mistral: GET /v1/batch/jobs/{job_id})
            return self.client.get_job(job_id)
        except ApiError as exc:
            if exc.status_code in (404, 422):
                raise ActionError(404, f"{self.upstream} has no job {job_id}") from None
            raise ActionError(
                local_status(exc), f"cannot read job {job_id} from {self.upstream}: {exc.message}"
            ) from None

    def _record_now(self, job: RemoteJob, action: str, origin: JobOrigin, by: str) -> None:
        with self.store.write() as writer:
            self._record(writer, job, now=self.clock(), action=action, origin=origin, by=by)

    @staticmethod
    def _record(
        writer: Writer, job: RemoteJob, *, now: datetime, action: str, origin: JobOrigin, by: str
    ) -> None:
        before = writer.load({job.id})
        writer.apply(plan(before, [job], now, source=action), now, origin)
        intents.record_action(
            writer,
            ActionRecord(
                job_id=job.id,
                action=action,
                requested_by=by,
                requested_at=now,
                status_after=job.raw_status,
            ),
        )

    def _existing(self, job_id: str) -> StoredJob:
        job = self.store.get_job(job_id)
        if job is None:  # recorded in this very call: cannot be missing
            raise ActionError(500, f"job {job_id} was recorded but cannot be read back")
        return job

    @contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        """Serialise requests under one key in this process, so a double-click does not
        race itself past the intent."""
        with self._locks_guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield


class Actions:
    """The actions on every configured provider's jobs: each goes to the provider of the
    job (stored, or told by its id's shape) or of the request."""

    def __init__(self, clients: Iterable[ProviderClient], store: Store) -> None:
        self.store = store
        self.providers: dict[str, ProviderActions] = {
            c.provider: ProviderActions(c, store) for c in clients
        }

    def provider(self, name: str) -> ProviderActions:
        """``name``'s actions; a 409 saying how to turn it on when it is not configured."""
        found = self.providers.get(name)
        if found is None:
            entry = provider_entry(name)
            raise ActionError(
                409,
                f"{entry.label} is not configured on this daemon: give it a key "
                f"(${entry.key_variable} or [{name}] api_key_file)",
            )
        return found

    def for_job(self, job_id: str, provider: str | None = None) -> ProviderActions:
        """The actions of ``job_id``'s provider: as given, as stored, else by its id."""
        if provider is None:
            stored = self.store.get_job(job_id)
            provider = stored.remote.provider if stored else provider_of_id(job_id)
        return self.provider(provider)

    def create(
        self, request: CreateRequest, key: str | None, requested_by: str, provider: str = "mistral"
    ) -> StoredJob:
        return self.provider(provider).create(request, key, requested_by)

    def cancel(self, job_id: str, requested_by: str) -> StoredJob:
        return self.for_job(job_id).cancel(job_id, requested_by)

    def track(self, job_id: str, requested_by: str, provider: str | None = None) -> StoredJob:
        return self.for_job(job_id, provider).track(job_id, requested_by)

    def upload(
        self, filename: str, content: bytes, purpose: str, provider: str = "mistral"
    ) -> dict[str, Any]:
        return self.provider(provider).upload(filename, content, purpose)


def local_status(exc: ApiError) -> int:
    """Upstream's refusal as the local API's answer: its 4xx passes through, except a 401
    (the daemon's key, not the caller's fault); an upstream fault is a bad gateway."""
    if exc.status_code is not None and 400 <= exc.status_code < 500 and exc.status_code != 401:
        return exc.status_code
    return 502
