"""Anthropic's create body (``POST /v1/messages/batches``) as a pydantic model: what the
local ``/anthropic/v1/messages/batches`` route validates and the Anthropic client sends."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

#: Anthropic's rule for a custom id.
CustomId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
]


class BatchRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    custom_id: CustomId
    #: A Messages API request body, relayed as given (Anthropic validates it).
    params: dict[str, Any]


class CreateMessageBatchIn(BaseModel):
    """Anthropic's ``CreateMessageBatchParams``: the requests, inline (up to 100,000)."""

    model_config = ConfigDict(extra="forbid")

    requests: Annotated[list[BatchRequestIn], Field(min_length=1, max_length=100_000)]

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
