"""Mistral's statuses are batchwatch's common ones, one to one."""

from __future__ import annotations

from batchwatch.models import MISTRAL_STATUSES, JobStatus, status_rank
from batchwatch.providers import Provider

PROVIDER = Provider(
    name="mistral",
    label="Mistral",
    statuses={s.value: s for s in MISTRAL_STATUSES},
    stages={s.value: status_rank(s) or 0 for s in MISTRAL_STATUSES},
    live_progress=True,
    default_url="https://api.mistral.ai",
    id_pattern="[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}",
    key_variable="MISTRAL_API_KEY",
)
assert all(isinstance(s, JobStatus) for s in PROVIDER.statuses.values())
