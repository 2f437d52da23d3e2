"""The simulation's batch records and the one serialisation of a ``MessageBatch``.

``MessageBatch`` (Anthropic's OpenAPI, and the SDK's ``types/messages/message_batch.py``)::

    {"id": "msgbatch_…", "type": "message_batch", "processing_status": ...,
     "request_counts": {"processing", "succeeded", "errored", "canceled", "expired"},
     "ended_at", "created_at", "expires_at", "cancel_initiated_at", "archived_at",
     "results_url"}

Every field is always present (``null`` when it does not apply); instants are RFC 3339 strings
in UTC with microseconds, as in the documentation's examples (``2024-08-20T18:37:24.100435Z``).
``results_url`` is ``null`` until the batch ends, then ``<base>/v1/messages/batches/<id>/
results`` on the host the client called. ``archived_at`` stays ``null``: the simulator never
archives (upstream, results are kept 29 days).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from batchwatch.simulator.anthropic.lifecycle import BatchPlan, BatchState, ProcessingStatus

DEFAULT_MODEL = "claude-sonnet-4-5"  # seeded batches' requests name this model
BATCHES = "/v1/messages/batches"  # the Message Batches API's collection
ONE_BATCH = BATCHES + "/{message_batch_id}"  # one batch, as the routes' template


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One request of a batch as the simulation keeps it: only what its result shows."""

    custom_id: str
    model: str


@dataclass(frozen=True, slots=True)
class SimBatch:
    """A batch as the simulation holds it. ``requests`` is ``None`` for a seeded batch,
    whose requests are synthetic (``request_at``)."""

    id: str
    plan: BatchPlan
    requests: tuple[BatchRequest, ...] | None
    cancel_at: float | None = None
    deleted_at: float | None = None

    def request_at(self, index: int) -> BatchRequest:
        if self.requests is not None:
            return self.requests[index]
        return BatchRequest(f"request-{index + 1}", DEFAULT_MODEL)


@dataclass(frozen=True, slots=True)
class BatchView:
    """A batch at one instant, as the API shows it."""

    batch: SimBatch
    state: BatchState

    @property
    def id(self) -> str:
        return self.batch.id

    @property
    def status(self) -> ProcessingStatus:
        return self.state.status

    def to_wire(self, base_url: str) -> dict[str, Any]:
        """The ``MessageBatch`` JSON; ``base_url`` (``http://host:port``) roots ``results_url``."""
        batch, state = self.batch, self.state
        ended = state.status is ProcessingStatus.ENDED
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": state.status.value,
            "request_counts": state.counts(),
            "ended_at": rfc3339(state.ended_at),
            "created_at": rfc3339(batch.plan.created_at),
            "expires_at": rfc3339(batch.plan.expires_at),
            "cancel_initiated_at": rfc3339(batch.cancel_at),
            "archived_at": None,
            "results_url": f"{base_url}{results_path(batch.id)}" if ended else None,
        }


def results_path(batch_id: str) -> str:
    return f"{BATCHES}/{batch_id}/results"


def rfc3339(t: float | None) -> str | None:
    """``2024-08-20T18:37:24.100435Z``, the documentation's form."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
