"""OpenAI's create body (``POST /v1/batches``) as a pydantic model: what the local
``/openai/v1/batches`` route validates, and what the OpenAI client sends."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from batchwatch.providers.mistral.schemas import METADATA_KEY, PLAIN_TEXT

#: The endpoints a batch may target (``CreateBatchRequest.endpoint``).
Endpoint = Literal[
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
]
_Key = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=METADATA_KEY)]
_Value = Annotated[str, StringConstraints(max_length=512, pattern=PLAIN_TEXT)]


class CreateBatchIn(BaseModel):
    """OpenAI's ``CreateBatchRequest``. Fields this version does not know pass through as
    given (``extra="allow"``): the API grows, and the body is relayed, not rebuilt."""

    model_config = ConfigDict(extra="allow")

    input_file_id: Annotated[str, StringConstraints(min_length=1, pattern=PLAIN_TEXT)]
    endpoint: Endpoint
    completion_window: Literal["24h"] = "24h"
    #: Up to 16 pairs (OpenAI's limit). The schema says a key that breaks the pattern is
    #: refused (pydantic's ``patternProperties`` alone would let a client think it allowed).
    metadata: (
        Annotated[
            dict[_Key, _Value],
            Field(max_length=16, json_schema_extra={"additionalProperties": False}),
        ]
        | None
    ) = None

    def to_json(self) -> dict[str, Any]:
        """The body as sent, and as hashed for idempotency (what was not given left out)."""
        return self.model_dump(mode="json", exclude_none=True)
