"""Anthropic Message Batches' ``processing_status`` values and how they map: ``ended`` is
CANCELLED if a cancel was initiated, else TIMEOUT_EXCEEDED if any request expired, else
FAILED if none succeeded, else SUCCESS (``wire.common_status``)."""

from __future__ import annotations

from batchwatch.models import JobStatus
from batchwatch.providers import Provider

STATUSES: dict[str, JobStatus | None] = {
    "in_progress": JobStatus.RUNNING,
    "canceling": JobStatus.CANCELLATION_REQUESTED,
    "ended": None,  # depends on the batch: see the module
}

PROVIDER = Provider(
    name="anthropic",
    label="Anthropic",
    statuses=STATUSES,
    stages={"in_progress": 0, "canceling": 1, "ended": 2},
    # Counts stay in ``processing`` until the whole batch ends.
    live_progress=False,
    default_url="https://api.anthropic.com",
    id_pattern=r"msgbatch_[A-Za-z0-9]+",
    key_variable="ANTHROPIC_API_KEY",
)
