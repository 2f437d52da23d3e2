"""Mistral's request bodies as pydantic models: the one definition of a create body, which
the local API and the simulator both validate with (and publish in their OpenAPI), and
which the daemon's actions and Mistral client take once validated.

Kept apart from ``wire.py``: pydantic costs a CLI command about 100 ms to import, and the
CLI only needs ``wire`` (it sends its create body as plain JSON, which the daemon checks
with this model).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from batchwatch.models import EndpointName

#: Text that is stored and queried: no control characters. A NUL in particular cannot be
#: stored in a PostgreSQL text column, so it would fail only after Mistral had acted.
PLAIN_TEXT = r"^[^\x00-\x1f\x7f]*$"
#: A metadata key is also a JSON path step when jobs are filtered by it; SQLite cannot
#: address a key holding a quote or a backslash.
METADATA_KEY = r"^[^\x00-\x1f\x7f\"\\]+$"
PlainText = Annotated[str, StringConstraints(pattern=PLAIN_TEXT)]
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=METADATA_KEY)]
MetadataValue = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=PLAIN_TEXT)]
# additionalProperties: a key outside the pattern is refused, and the schema says so.
Metadata = Annotated[
    dict[MetadataKey, MetadataValue], Field(json_schema_extra={"additionalProperties": False})
]


#: Mistral's ``FilePurpose``.
FilePurpose = Literal["batch", "fine-tune", "ocr"]
#: The orders Mistral's job list takes (``order_by``): oldest or newest first.
OrderBy = Literal["created", "-created"]


class BatchRequestIn(BaseModel):
    custom_id: PlainText | None = None
    body: dict[str, Any]


class CreateBatchJobIn(BaseModel):
    """Mistral's ``CreateBatchJobRequest``."""

    # The one-source rule below, stated in the schema too, so a client (or a fuzzer) reading
    # /openapi.json knows that a body with neither list, or both, is invalid.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["input_files"],
                    "properties": {"input_files": {"type": "array", "minItems": 1}},
                },
                {
                    "required": ["requests"],
                    "properties": {"requests": {"type": "array", "minItems": 1}},
                },
            ]
        },
    )

    endpoint: EndpointName
    input_files: list[uuid.UUID] | None = None  # Mistral's file ids are UUIDs
    requests: list[BatchRequestIn] | None = Field(default=None, max_length=10000)
    model: PlainText | None = None
    agent_id: PlainText | None = None
    metadata: Metadata | None = None
    timeout_hours: int = Field(default=24, ge=1, le=168)

    @model_validator(mode="after")
    def _one_source(self) -> CreateBatchJobIn:
        # Mistral takes exactly one: a job's requests come from files or inline, not both.
        if bool(self.input_files) == bool(self.requests):
            # Not a ValueError: FastAPI would serialise the exception object in ``ctx``.
            raise PydanticCustomError(
                "value_error", "give input_files or requests: exactly one, as a non-empty list"
            )
        return self

    def to_json(self) -> dict[str, Any]:
        """The body as sent to Mistral, and as hashed for idempotency: what was not given
        (None, an empty list or mapping) is left out, so equal requests hash equal."""
        body = self.model_dump(mode="json", exclude_none=True)
        return {key: value for key, value in body.items() if value not in ([], {})}
