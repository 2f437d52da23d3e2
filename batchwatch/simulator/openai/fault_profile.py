"""The OpenAI simulator's ``FaultProfile``: what the shared fault layer needs to fault OpenAI's
API in its own shapes. The required fields are those of OpenAI's OpenAPI description
(``Batch``, ``OpenAIFile``; ``tests/data/openai-openapi-batch.yaml``), and a list's
``has_more`` is the one an empty list still has (``first_id``/``last_id`` are optional on
``ListBatchesResponse``). The route keys are those of ``routes`` and ``files_routes``."""

from __future__ import annotations

from typing import Any

from batchwatch.simulator.faults import RATE_LIMIT, FaultProfile
from batchwatch.simulator.openai.errors import error_body


def _fault_error(status: int, message: str) -> dict[str, Any]:
    """OpenAI's ``ErrorResponse`` for a request it did not process: a 429 names the limit hit
    (``type`` "requests", ``code`` "rate_limit_exceeded"), a 5xx is a server_error."""
    if status == RATE_LIMIT[0]:
        return error_body(message, "requests", code="rate_limit_exceeded")
    return error_body(message, "server_error")


_BATCH_ROUTES = frozenset(
    {"GET /v1/batches", "POST /v1/batches", "GET /v1/batches/{batch_id}",
     "POST /v1/batches/{batch_id}/cancel"}
)  # fmt: skip
_REQUIRED = {
    "batch": ("id", "object", "endpoint", "input_file_id", "completion_window", "status",
              "created_at"),
    "file": ("id", "object", "bytes", "created_at", "filename", "purpose", "status"),
}  # fmt: skip
OPENAI_FAULTS = FaultProfile(
    create_route="POST /v1/batches",
    job_routes=_BATCH_ROUTES,
    binary_routes=frozenset({"GET /v1/files/{file_id}/content"}),
    required_fields=_REQUIRED,
    kind_field="object",
    list_field="has_more",
    status_field="status",
    undocumented_status="paused",  # OpenAI's statuses are lower case; this one never was
    error_body=_fault_error,
)
