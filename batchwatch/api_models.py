"""The local API's JSON shapes. The job shapes are Mistral's, so its SDK parses them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from batchwatch.models import ProgressSample, StoredJob, Transition


class BatchErrorOut(BaseModel):
    message: str
    count: int = 1


class BatchJobOut(BaseModel):
    """Mistral's ``BatchJob``, from the latest recorded snapshot."""

    id: str
    object: Literal["batch"] = "batch"
    input_files: list[str]
    metadata: dict[str, Any] | None = None
    endpoint: str
    model: str | None = None
    agent_id: str | None = None
    output_file: str | None = None
    error_file: str | None = None
    errors: list[BatchErrorOut]
    outputs: list[dict[str, Any]] | None = None
    status: str
    created_at: int
    total_requests: int
    completed_requests: int
    succeeded_requests: int
    failed_requests: int
    started_at: int | None = None
    completed_at: int | None = None

    @classmethod
    def of(cls, stored: StoredJob) -> BatchJobOut:
        job = stored.remote
        return cls(
            id=job.id,
            input_files=list(job.input_files),
            metadata=dict(job.metadata) if job.metadata is not None else None,
            endpoint=job.endpoint,
            model=job.model,
            agent_id=job.agent_id,
            output_file=job.output_file,
            error_file=job.error_file,
            errors=[BatchErrorOut(message=e.message, count=e.count) for e in job.errors],
            status=job.raw_status,
            created_at=job.created_at,
            total_requests=job.counters.total,
            completed_requests=job.counters.completed,
            succeeded_requests=job.counters.succeeded,
            failed_requests=job.counters.failed,
            started_at=job.started_at,
            completed_at=job.completed_at,
        )


class ListBatchJobsOut(BaseModel):
    """Mistral's ``ListBatchJobsResponse``."""

    object: Literal["list"] = "list"
    data: list[BatchJobOut]
    total: int


class TransitionOut(BaseModel):
    id: int
    job_id: str
    seq: int = Field(description="1 for the first sighting, then one more per change")
    from_status: str | None = Field(description="null on the first sighting of the job")
    to_status: str
    observed_at: datetime = Field(description="when batchwatch saw the new status (UTC)")
    last_seen_before: datetime | None = Field(
        description="the last time the job was seen in from_status: the change happened "
        "between this and observed_at"
    )
    source: str = Field(description="poll, create, cancel or track")

    @classmethod
    def of(cls, t: Transition) -> TransitionOut:
        return cls(
            id=t.id or 0,
            job_id=t.job_id,
            seq=t.seq,
            from_status=t.from_status.value if t.from_status else None,
            to_status=t.to_status.value,
            observed_at=t.observed_at,
            last_seen_before=t.last_seen_before,
            source=t.source,
        )


class TransitionListOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[TransitionOut]
    total: int


class TransitionFeedOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[TransitionOut]
    next_cursor: int = Field(description="pass as ?after= to read what comes next")


class ProgressOut(BaseModel):
    id: int
    job_id: str
    observed_at: datetime
    total_requests: int
    completed_requests: int
    succeeded_requests: int
    failed_requests: int

    @classmethod
    def of(cls, p: ProgressSample) -> ProgressOut:
        return cls(
            id=p.id or 0,
            job_id=p.job_id,
            observed_at=p.observed_at,
            total_requests=p.counters.total,
            completed_requests=p.counters.completed,
            succeeded_requests=p.counters.succeeded,
            failed_requests=p.counters.failed,
        )


class ProgressListOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[ProgressOut]
    total: int


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    reasons: list[str]
    started_at: str
    last_poll_at: str | None
    last_success_at: str | None
    last_error: str | None
    consecutive_failures: int
    cycles: int
    jobs_by_status: dict[str, int] = Field(default_factory=dict)


class ErrorOut(BaseModel):
    detail: Any
