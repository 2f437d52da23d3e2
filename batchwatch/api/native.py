"""What the provider-native routes (``/openai``, ``/anthropic``) share: one provider's jobs
read from the store (a job not stored yet is tracked first, so its history starts there),
pages by a job-id cursor as both APIs page, and file bodies relayed from upstream.

Reads come from the store, as on the ``/v1`` routes; create and cancel go through
``Actions``, which records the outcome before the answer. Errors are ``HTTPException``s,
rendered in the provider's shape by ``native_errors``.
"""

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass

from fastapi import HTTPException
from fastapi.responses import StreamingResponse

from batchwatch.actions import Actions, local_status
from batchwatch.api.actions import refused
from batchwatch.errors import ActionError, ApiError
from batchwatch.logs import get_logger, redact
from batchwatch.models import RemoteJob, StoredJob
from batchwatch.providers import provider as catalog_entry
from batchwatch.providers.base import CreateRequest
from batchwatch.store import JobQuery

log = get_logger("batchwatch.api")


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a provider's jobs, newest first, and whether more lie past it."""

    jobs: list[RemoteJob]
    has_more: bool


@dataclass(frozen=True, slots=True)
class NativeJobs:
    """One provider's jobs, as its native routes read and act on them."""

    actions: Actions
    provider: str

    def not_found(self, job_id: str) -> HTTPException:
        return HTTPException(404, f"no {catalog_entry(self.provider).label} batch {job_id}")

    def _check_id(self, job_id: str) -> None:
        # An id of another shape cannot be this provider's: a 404, as upstream answers,
        # without asking it (nor the database).
        if not re.fullmatch(catalog_entry(self.provider).id_pattern, job_id):
            raise self.not_found(job_id)

    def get(self, job_id: str, requested_by: str) -> RemoteJob:
        """The stored job; one not stored yet is tracked first (a 404 if upstream has none)."""
        self._check_id(job_id)
        stored = self.actions.store.get_job(job_id)
        if stored is None:
            return self.act(lambda: self.actions.track(job_id, requested_by, self.provider))
        if stored.remote.provider != self.provider:
            raise self.not_found(job_id)
        return stored.remote

    def create(self, body: CreateRequest, key: str | None, requested_by: str) -> RemoteJob:
        return self.act(lambda: self.actions.create(body, key, requested_by, self.provider))

    def cancel(self, job_id: str, requested_by: str) -> RemoteJob:
        self._check_id(job_id)
        return self.act(lambda: self.actions.cancel(job_id, requested_by))

    @staticmethod
    def act(call: Callable[[], StoredJob]) -> RemoteJob:
        try:
            return call().remote
        except ActionError as exc:
            raise refused(exc) from None

    def page(self, limit: int, after: str | None = None, before: str | None = None) -> Page:
        """``limit`` jobs, newest first: the newest, those just older than ``after``, or
        those just newer than ``before`` (read upwards from it, then turned round)."""
        cursor = after or before
        beyond: tuple[int, str] | None = None
        if cursor is not None:
            stored = self.actions.store.get_job(cursor)
            if stored is None or stored.remote.provider != self.provider:
                raise HTTPException(404, f"no {catalog_entry(self.provider).label} batch "
                                    f"{cursor} to page from")  # fmt: skip
            beyond = (stored.remote.created_at, stored.id)
        newest_first = before is None
        query = JobQuery(
            provider=self.provider, newest_first=newest_first, page_size=limit, beyond=beyond
        )
        found, total = self.actions.store.list_jobs(query)
        jobs = [j.remote for j in found]
        if not newest_first:
            jobs.reverse()
        return Page(jobs, has_more=total > len(jobs))

    def stream(self, file_id: str, media_type: str) -> StreamingResponse:
        """A file's content from upstream through the provider's client, relayed a chunk at
        a time (never held whole)."""
        try:
            client = self.actions.provider(self.provider).client
        except ActionError as exc:
            raise refused(exc) from None
        return relay(lambda: client.file_content(file_id), media_type, file_id)


def relay(
    open_stream: Callable[[], AbstractContextManager[Iterator[bytes]]],
    media_type: str,
    what: str,
) -> StreamingResponse:
    """Stream a body opened by ``open_stream``: an upstream refusal before the first byte
    is an error answer; one after it cuts the response off (raised, so the connection
    closes without the end of the chunked body, and a client cannot take a part for the
    whole)."""
    stack = ExitStack()
    try:
        chunks = stack.enter_context(open_stream())
    except ApiError as exc:
        stack.close()
        raise HTTPException(local_status(exc), f"{what}: {redact(exc.message)}") from None

    def body() -> Iterator[bytes]:
        with stack:
            try:
                yield from chunks
            except ApiError as exc:
                log.warning("relay_cut", what=what, error=redact(exc.message))
                raise

    return StreamingResponse(body(), media_type=media_type)
