"""The Anthropic simulator's ``FaultProfile``: what the shared fault layer needs to fault
Anthropic's API in its own shapes. A ``MessageBatch`` names its kind in ``type`` and its
status in ``processing_status``; its required fields, and the list's, are those of
Anthropic's OpenAPI description (``BetaMessageBatch``, ``BetaListResponse_MessageBatch_``;
``tests/data/anthropic-openapi-batches.yaml``). A list has no ``object``: the fault layer
knows it by its ``data``."""

from __future__ import annotations

from typing import Any

from batchwatch.simulator.anthropic.batches import BATCHES, ONE_BATCH
from batchwatch.simulator.anthropic.errors import error_body, error_type_for
from batchwatch.simulator.faults import FaultProfile


def _fault_error(status: int, message: str) -> dict[str, Any]:
    """Anthropic's documented error body, its type following the status (429
    rate_limit_error, 529 overloaded_error, any other 5xx api_error). No ``request_id``: a
    fault is answered before the gateway gives the request one."""
    return error_body(error_type_for(status), message)


_REQUIRED = {
    "message_batch": ("id", "type", "processing_status", "request_counts", "ended_at",
                      "created_at", "expires_at", "archived_at", "cancel_initiated_at",
                      "results_url"),
}  # fmt: skip
ANTHROPIC_FAULTS = FaultProfile(
    create_route=f"POST {BATCHES}",
    job_routes=frozenset(
        {f"GET {BATCHES}", f"POST {BATCHES}", f"GET {ONE_BATCH}", f"POST {ONE_BATCH}/cancel"}
    ),
    binary_routes=frozenset({f"GET {ONE_BATCH}/results"}),  # JSONL
    required_fields=_REQUIRED,
    kind_field="type",
    list_field="has_more",
    status_field="processing_status",
    undocumented_status="paused",  # documented: in_progress, canceling, ended
    error_body=_fault_error,
)
