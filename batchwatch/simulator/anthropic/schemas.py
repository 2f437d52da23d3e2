"""The request bodies the simulator accepts, validated by pydantic: the create body of a
Message Batch (``CreateMessageBatchParams`` in Anthropic's OpenAPI) and the ``/_sim`` seeding.

Create, as documented: ``requests`` is a non-empty list (at most 100,000) of
``{custom_id, params}`` and nothing else; ``custom_id`` is 1-64 characters of
``[a-zA-Z0-9_-]``, unique within the batch; ``params`` is a Messages API body, of which the
simulator checks ``model``, ``max_tokens`` (1 or more) and ``messages`` (not empty) and keeps
the rest as it came. ``params.metadata.user_id`` carries the simulator's directives
(``lifecycle``). A body that breaks a rule is a 400 invalid_request_error naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from batchwatch.simulator.anthropic.lifecycle import OUTCOMES

MAX_BATCH_REQUESTS = 100_000  # documented limit of requests per batch


class MetadataIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: Annotated[str, Field(max_length=256)] | None = None


class MessageParamsIn(BaseModel):
    """A Messages API body; fields beyond these are accepted unchecked."""

    model_config = ConfigDict(extra="allow")
    model: Annotated[str, Field(min_length=1)]
    max_tokens: Annotated[int, Field(ge=1)]
    messages: Annotated[list[dict[str, Any]], Field(min_length=1)]
    metadata: MetadataIn | None = None


class BatchRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    custom_id: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    params: MessageParamsIn


class CreateBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requests: Annotated[list[BatchRequestIn], Field(min_length=1, max_length=MAX_BATCH_REQUESTS)]

    @model_validator(mode="after")
    def _unique_custom_ids(self) -> CreateBatchIn:
        seen: set[str] = set()
        for request in self.requests:
            if request.custom_id in seen:
                raise ValueError(
                    f"custom_id {request.custom_id!r} is used more than once: custom_ids "
                    "must be unique within a batch"
                )
            seen.add(request.custom_id)
        return self

    @property
    def user_id(self) -> str | None:
        """The first request's ``metadata.user_id``, where directives are read."""
        metadata = self.requests[0].params.metadata
        return None if metadata is None else metadata.user_id


class BulkSeedIn(BaseModel):
    """``POST /_sim/jobs/bulk``: ``seed_jobs``' arguments."""

    model_config = ConfigDict(extra="forbid")
    count: Annotated[int, Field(ge=1, le=100_000)]
    total_requests: Annotated[int, Field(ge=1, le=MAX_BATCH_REQUESTS)] = 10
    outcome: str = "succeeded"
    queue_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    run_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    failure_rate: Annotated[float, Field(ge=0, le=1)] = 0.0

    @field_validator("outcome")
    @classmethod
    def _known_outcome(cls, outcome: str) -> str:
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
        return outcome


class QuirksIn(BaseModel):
    """``POST /_sim/quirks``: the simulation's default for the "404 right after create"."""

    model_config = ConfigDict(extra="forbid")
    hidden_gets: Annotated[int, Field(ge=0, le=1000)]
