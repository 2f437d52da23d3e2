"""OpenAI Batch's statuses (``Batch.status``), in the order a batch goes through them, and
the common status each maps to."""

from __future__ import annotations

from batchwatch.models import JobStatus
from batchwatch.providers import Provider

STATUSES: dict[str, JobStatus] = {
    "validating": JobStatus.QUEUED,
    "in_progress": JobStatus.RUNNING,
    "finalizing": JobStatus.RUNNING,
    "cancelling": JobStatus.CANCELLATION_REQUESTED,
    "completed": JobStatus.SUCCESS,
    "failed": JobStatus.FAILED,
    "expired": JobStatus.TIMEOUT_EXCEEDED,
    "cancelled": JobStatus.CANCELLED,
}
_ORDER = ("validating", "in_progress", "finalizing", "cancelling")

PROVIDER = Provider(
    name="openai",
    label="OpenAI",
    statuses=STATUSES,
    # The four ends share the last stage: a batch never moves from one to another.
    stages={s: _ORDER.index(s) if s in _ORDER else len(_ORDER) for s in STATUSES},
    live_progress=True,
    default_url="https://api.openai.com",
    id_pattern=r"batch_[A-Za-z0-9]+",
    key_variable="OPENAI_API_KEY",
)
