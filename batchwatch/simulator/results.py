"""The files a finished job writes: its output file and its error file, rendered from the
job's requests (docs/mistral-api.md §6).

Each line of an output file (``batch_result``) is ``{"id": "batch-<8 hex of job id>-<1-based
request index>-<uuid4>", "custom_id": ..., "response": {"status_code": 200, "body": <the
endpoint's normal response>}, "error": null}``. The error file (``batch_error``) format is
undocumented upstream; the simulator writes the same ``id``/``custom_id`` with
``"response": {"status_code": 500, "body": <Mistral's documented error body>}`` and
``"error": {"message": "...", "code": "simulated_failure"}``.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from batchwatch.simulator.api_errors import error_body
from batchwatch.simulator.files import RequestLine, StoredFile

ERROR_CODE = "simulated_failure"


@dataclass(frozen=True, slots=True)
class ResultSource:
    """What a job's result file is rendered from. ``requests`` is ``None`` for seeded
    jobs, whose requests are synthetic (custom ids ``"0"``, ``"1"``, …)."""

    job_id: str
    endpoint: str
    model: str | None
    requests: tuple[RequestLine, ...] | None
    processed: int  # requests 0 .. processed-1 ran
    is_failed: Callable[[int], bool]
    finished_at: float

    def request(self, index: int) -> RequestLine:
        return RequestLine(str(index), {}) if self.requests is None else self.requests[index]


def result_file(source: ResultSource, *, errors: bool, file_id: str) -> StoredFile:
    """The output file (the succeeded requests) or, with ``errors``, the error file."""
    render = _error_line if errors else _output_line
    lines = [
        render(source, index)
        for index in range(source.processed)
        if source.is_failed(index) == errors
    ]
    kind = "error" if errors else "output"
    return StoredFile(
        id=file_id,
        filename=f"batch-{source.job_id}-{kind}.jsonl",
        purpose="batch",
        sample_type="batch_error" if errors else "batch_result",
        source="mistral",
        created_at=source.finished_at,
        content=b"".join(json.dumps(line).encode() + b"\n" for line in lines),
        num_lines=len(lines),
    )


def _line_id(source: ResultSource, index: int) -> str:
    return f"batch-{source.job_id.replace('-', '')[:8]}-{index + 1}-{uuid.uuid4()}"


def _output_line(source: ResultSource, index: int) -> dict[str, Any]:
    request = source.request(index)
    model = source.model or str(request.body.get("model") or "mistral-small-latest")
    build = _RESPONSE_BODIES.get(source.endpoint, _chat_completion)
    body = build(model, index + 1, int(source.finished_at))
    return {
        "id": _line_id(source, index),
        "custom_id": request.custom_id,
        "response": {"status_code": 200, "body": body},
        "error": None,
    }


def _error_line(source: ResultSource, index: int) -> dict[str, Any]:
    message = f"Simulated failure of request {index + 1}"
    return {
        "id": _line_id(source, index),
        "custom_id": source.request(index).custom_id,
        "response": {"status_code": 500, "body": error_body(message, "server_error")},
        "error": {"message": message, "code": ERROR_CODE},
    }


# Plausible response bodies per endpoint: enough shape that a consumer parsing
# ``response.body`` the way it parses the live endpoint does not trip.
def _usage(prompt: int = 12, completion: int = 8) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _chat_completion(model: str, n: int, created: int) -> dict[str, Any]:
    message = {"role": "assistant", "content": f"Simulated answer {n}.", "tool_calls": None}
    return {
        "id": uuid.uuid4().hex,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": _usage(),
    }


def _embedding(model: str, n: int, created: int) -> dict[str, Any]:
    vector = [round(math.sin(n + i), 6) for i in range(8)]
    return {
        "id": uuid.uuid4().hex,
        "object": "list",
        "model": model,
        "data": [{"object": "embedding", "embedding": vector, "index": 0}],
        "usage": _usage(completion=0),
    }


def _moderation(model: str, n: int, created: int) -> dict[str, Any]:
    categories = ("sexual", "hate_and_discrimination", "violence_and_threats", "selfharm")
    return {
        "id": uuid.uuid4().hex,
        "model": model,
        "results": [
            {
                "categories": dict.fromkeys(categories, False),
                "category_scores": dict.fromkeys(categories, 0.001),
            }
        ],
    }


def _ocr(model: str, n: int, created: int) -> dict[str, Any]:
    page = {"index": 0, "markdown": f"# Simulated page {n}", "images": [], "dimensions": None}
    return {"model": model, "pages": [page], "usage_info": {"pages_processed": 1}}


def _conversation(model: str, n: int, created: int) -> dict[str, Any]:
    entry = {"object": "entry", "type": "message.output", "role": "assistant",
             "content": f"Simulated answer {n}."}  # fmt: skip
    return {
        "object": "conversation.response",
        "conversation_id": f"conv_{uuid.uuid4().hex}",
        "outputs": [entry],
        "usage": _usage(),
    }


def _transcription(model: str, n: int, created: int) -> dict[str, Any]:
    text = f"Simulated transcript {n}."
    return {"model": model, "text": text, "language": "en", "segments": [], "usage": _usage()}


_RESPONSE_BODIES: dict[str, Callable[[str, int, int], dict[str, Any]]] = {
    "/v1/chat/completions": _chat_completion,
    "/v1/fim/completions": _chat_completion,
    "/v1/embeddings": _embedding,
    "/v1/moderations": _moderation,
    "/v1/chat/moderations": _moderation,
    "/v1/classifications": _moderation,
    "/v1/chat/classifications": _moderation,
    "/v1/ocr": _ocr,
    "/v1/conversations": _conversation,
    "/v1/audio/transcriptions": _transcription,
}
