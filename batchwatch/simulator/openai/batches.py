"""The simulation's batch records: what a create asks for, what the simulation holds, and how
a batch looks at one instant as OpenAI's Batch object.

The JSON follows the Batch schema of OpenAI's OpenAPI description, in the field order of its
example; every field is present, ``null`` until it applies (as the API sends them).
``errors`` is ``null`` unless the batch failed, then ``{"object": "list", "data": [...]}``.
``usage`` sums the succeeded requests' tokens so far (OpenAI fills it for batches created
after September 7, 2025: all of the simulator's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from batchwatch.simulator.openai.inputs import BatchRequest, LineError
from batchwatch.simulator.openai.lifecycle import BatchPlan, BatchState, BatchStatus
from batchwatch.simulator.timelines import StatusEntry

COMPLETION_WINDOW_SECONDS = 24 * 3600  # "24h", the only window OpenAI offers


def token_limit_error(model: str | None) -> LineError:
    """Why a batch whose input was valid fails (``sim_outcome=failed``): the commonest real
    reason, the organisation's queue of enqueued tokens being full."""
    return LineError(
        "token_limit_exceeded",
        f"Enqueued token limit reached for {model or 'this model'}. "
        "Please try again once some in_progress batches have been completed. (simulated)",
    )


@dataclass(frozen=True, slots=True)
class BatchSpec:
    """What a create asks for (``CreateBatchRequest``, already validated)."""

    input_file_id: str
    endpoint: str
    completion_window: str = "24h"
    metadata: Mapping[str, str] | None = None
    output_ttl_seconds: int | None = None  # output_expires_after.seconds


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """A batch as the simulation holds it: its spec, its plan and its status timeline."""

    id: str
    spec: BatchSpec
    model: str | None
    plan: BatchPlan
    line: tuple[StatusEntry[BatchStatus], ...]
    errors: tuple[LineError, ...]  # shown once the batch has failed
    requests: tuple[BatchRequest, ...] | None  # None: synthetic (seeded batches)

    @property
    def ends_at(self) -> float:
        """When the batch enters its terminal status (the timeline's last entry)."""
        return self.line[-1].at


@dataclass(frozen=True, slots=True)
class BatchView:
    """A batch at one instant, as the API shows it."""

    record: BatchRecord
    state: BatchState
    output_file_id: str | None
    error_file_id: str | None
    input_tokens: int
    output_tokens: int

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def status(self) -> BatchStatus:
        return self.state.status

    def to_wire(self) -> dict[str, Any]:
        record, state, spec = self.record, self.state, self.record.spec
        created = int(record.plan.created_at)
        errors = None
        if state.status is BatchStatus.FAILED:
            errors = {"object": "list", "data": [e.to_wire() for e in record.errors]}
        return {
            "id": record.id,
            "object": "batch",
            "endpoint": spec.endpoint,
            "model": record.model,
            "errors": errors,
            "input_file_id": spec.input_file_id,
            "completion_window": spec.completion_window,
            "status": state.status.value,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": created,
            "in_progress_at": state.entered_at(BatchStatus.IN_PROGRESS),
            "expires_at": created + COMPLETION_WINDOW_SECONDS,
            "finalizing_at": state.entered_at(BatchStatus.FINALIZING),
            "completed_at": state.entered_at(BatchStatus.COMPLETED),
            "failed_at": state.entered_at(BatchStatus.FAILED),
            "expired_at": state.entered_at(BatchStatus.EXPIRED),
            "cancelling_at": state.entered_at(BatchStatus.CANCELLING),
            "cancelled_at": state.entered_at(BatchStatus.CANCELLED),
            "request_counts": {
                "total": state.total,
                "completed": state.succeeded,
                "failed": state.failed,
            },
            "usage": {
                "input_tokens": self.input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": self.output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": self.input_tokens + self.output_tokens,
            },
            "metadata": None if spec.metadata is None else dict(spec.metadata),
        }


@dataclass(frozen=True, slots=True)
class BatchPage:
    """One page of ``GET /v1/batches``, newest first."""

    batches: list[BatchView]
    has_more: bool

    def to_wire(self) -> dict[str, Any]:
        data = [view.to_wire() for view in self.batches]
        return {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": self.has_more,
        }
