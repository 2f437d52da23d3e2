"""Acting on a job's results: retry the requests that did not succeed, delete the job
upstream once its results are safe.

A retry builds a new input file from the original lines of exactly the requests asked for,
uploads it, and creates the child job through the idempotent create path (``Actions.create``)
under a key derived from the parent and the outcomes: asked twice, or again after a lost
answer, it makes one child. Once that key holds an intent, its body is used as it stands
(no second upload), so the second asking is the same request as the first.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from batchwatch.actions import Actions, ProviderActions
from batchwatch.errors import ActionError, ApiError
from batchwatch.logs import get_logger
from batchwatch.models import JobResults, Outcome, ResultsState, StoredJob
from batchwatch.providers.base import CreateRequest
from batchwatch.results.ledger import request_lines
from batchwatch.store import Store, intents, ledger
from batchwatch.store import results as stored

log = get_logger("batchwatch.results")

#: The metadata key a retry's child carries: its parent's id.
PARENT_TAG = "batchwatch_parent"
RETRYABLE: tuple[Outcome, ...] = (Outcome.FAILED, Outcome.NOT_RUN)


@dataclass
class ResultsActions:
    actions: Actions

    @property
    def store(self) -> Store:
        return self.actions.store

    def retry(
        self, job_id: str, only: Collection[Outcome], key: str | None, requested_by: str
    ) -> StoredJob:
        """The child job of ``job_id`` holding its requests of the outcomes ``only``."""
        parent = self._job(job_id)
        acting = self.actions.for_job(job_id, parent.remote.provider)
        outcomes = sorted(set(only) or set(RETRYABLE))
        key = key or f"retry:{job_id}:{','.join(outcomes)}"
        intent = intents.get_intent(self.store, key)
        request: CreateRequest
        if intent is not None:  # asked before: the same request again, nothing uploaded
            request = acting.client.create_model.model_validate(intent.body)
        else:
            request = self._child_request(acting, parent, self._ready(job_id), outcomes)
        child = acting.create(request, key, requested_by)
        log.info("job_retried", parent=job_id, child=child.id, only=outcomes, by=requested_by)
        return child

    def _child_request(
        self,
        acting: ProviderActions,
        parent: StoredJob,
        results: JobResults,
        outcomes: list[Outcome],
    ) -> CreateRequest:
        custom_ids = ledger.custom_ids(self.store, parent.id, outcomes)
        if not custom_ids:
            words = " or ".join(o.value for o in outcomes)
            raise ActionError(409, f"job {parent.id} has no {words} requests to retry")
        inputs = [Path(f.path) for f in results.files if f.kind == "input"]
        for path in inputs:
            if not path.is_file():
                raise ActionError(
                    409, f"job {parent.id}: its input file is no longer on disk at {path}"
                )
        if not inputs:
            raise ActionError(409, f"job {parent.id} has no input file to take requests from")
        with _lines_file(inputs, custom_ids) as lines:
            try:
                # The provider's create body for those lines (Mistral and OpenAI upload them
                # as a new input file; Anthropic sends them inline).
                request: CreateRequest = acting.client.child_request(
                    parent.remote, lines, PARENT_TAG
                )
            except ApiError as exc:
                raise ActionError(
                    502, f"upload of the retry's input failed: {exc.message}"
                ) from None
        log.info("retry_input_ready", job_id=parent.id, requests=len(custom_ids))
        return request

    def delete(self, job_id: str, *, force: bool, requested_by: str) -> bool:
        """The provider's delete of ``job_id``, once it ended and (unless ``force``) its results
        are downloaded; its history and files stay here."""
        job = self._job(job_id)
        if not job.status.is_terminal:
            raise ActionError(409, f"job {job_id} has not ended: it is {job.status.value}")
        results = stored.job_results(self.store, job_id)
        if not force and (results is None or results.state is not ResultsState.READY):
            state = results.state.value if results else "not fetched"
            raise ActionError(
                409,
                f"the results of job {job_id} are {state}: deleting it upstream would lose "
                "them (?force=true, or --force, deletes it anyway)",
            )
        acting = self.actions.for_job(job_id, job.remote.provider)
        delete = getattr(acting.client, "delete_job", None)
        if delete is None:
            raise ActionError(409, f"{acting.upstream} batches cannot be deleted upstream")
        try:
            deleted = bool(delete(job_id))
        except ApiError as exc:
            if exc.status_code != 404:
                raise ActionError(502, f"delete failed: {exc.message}") from None
            deleted = True  # already gone upstream: the outcome asked for
        stored.record_deleted(self.store, job_id, requested_by, job.status.value)
        log.info("job_deleted", job_id=job_id, by=requested_by, forced=force)
        return deleted

    def _job(self, job_id: str) -> StoredJob:
        job = self.store.get_job(job_id)
        if job is None:
            raise ActionError(404, f"no tracked job with id {job_id}")
        return job

    def _ready(self, job_id: str) -> JobResults:
        results = stored.job_results(self.store, job_id)
        if results is None or results.state is not ResultsState.READY:
            state = results.state.value if results else "not fetched"
            raise ActionError(
                409, f"the results of job {job_id} are {state}: a retry needs them downloaded"
            )
        return results


@contextmanager
def _lines_file(inputs: list[Path], custom_ids: Collection[str]) -> Iterator[Path]:
    """The original input lines of ``custom_ids``, in a temporary file beside the inputs."""
    fd, name = tempfile.mkstemp(prefix=".retry-", suffix=".jsonl", dir=inputs[0].parent)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as sink:
            for line in request_lines(inputs, custom_ids):
                sink.write(line)
        yield path
    finally:
        path.unlink(missing_ok=True)
