"""The simulation's job records: what a create asks for, what the simulation holds, how a
job looks at one instant (serialised by the provider package's ``wire.job_to_json``, the one
definition of Mistral's ``BatchJob`` JSON), and what a listing asks for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from batchwatch.models import BatchError, Counters, JobStatus, RemoteJob
from batchwatch.providers.mistral.wire import job_to_json
from batchwatch.simulator.files import RequestLine
from batchwatch.simulator.lifecycle import JobPlan, JobState
from batchwatch.simulator.timelines import StatusEntry

_FAILURE = (BatchError("Simulated job failure: the batch stopped half-way", 1),)


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
class SimJob:
    """A job as the simulation holds it: its spec, its plan and its status timeline."""

    id: str
    spec: JobSpec
    owner: str  # "me" (created through the API) or "other"
    plan: JobPlan
    line: tuple[StatusEntry[JobStatus], ...]
    requests: tuple[RequestLine, ...] | None  # None: synthetic (seeded jobs)
    deleted_at: float | None = None


def remote_job(
    job: SimJob, state: JobState, output_file: str | None, error_file: str | None
) -> RemoteJob:
    """The job at one instant as the product's domain record, which ``wire.job_to_json``
    serialises; timestamps are int epoch seconds."""
    return RemoteJob(
        id=job.id,
        status=state.status,
        raw_status=state.status.value,
        endpoint=job.spec.endpoint,
        input_files=job.spec.input_files,
        model=job.spec.model,
        agent_id=job.spec.agent_id,
        metadata=job.spec.metadata,
        output_file=output_file,
        error_file=error_file,
        errors=_FAILURE if state.status is JobStatus.FAILED else (),
        created_at=int(job.plan.created_at),
        started_at=_epoch(state.started_at),
        completed_at=_epoch(state.completed_at),
        counters=Counters(
            total=job.plan.total_requests,
            completed=state.completed,
            succeeded=state.succeeded,
            failed=state.failed,
        ),
    )


@dataclass(frozen=True, slots=True)
class JobView:
    """A job at one instant, as the API shows it: the ``RemoteJob`` it serialises, and what
    the simulation holds behind it (its spec, and its plan and state in float instants)."""

    remote: RemoteJob
    spec: JobSpec
    plan: JobPlan
    state: JobState
    outputs: list[dict[str, Any]] | None = None

    @property
    def id(self) -> str:
        return self.remote.id

    @property
    def output_file(self) -> str | None:
        return self.remote.output_file

    @property
    def error_file(self) -> str | None:
        return self.remote.error_file

    def to_wire(self) -> dict[str, Any]:
        """``BatchJob`` (docs/mistral-api.md §1.3), with the inline ``outputs`` when read
        with ``?inline=true`` (the one field a ``RemoteJob`` does not carry)."""
        body = job_to_json(self.remote)
        body["outputs"] = self.outputs
        return body


def _epoch(t: float | None) -> int | None:
    return None if t is None else int(t)


@dataclass(frozen=True, slots=True)
class SimJobQuery:
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

    def matches(self, job: SimJob) -> bool:
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
