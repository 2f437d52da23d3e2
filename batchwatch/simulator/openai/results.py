"""The files the simulator writes for a batch: the output and error files of a batch that
ended, and the synthetic input file of seeded batches. Bodies per endpoint are ``bodies``';
which request failed is the batch's plan (``lifecycle``).

Only the requests that ran before the batch ended (frozen at a cancel) have a line, in
request order. Both files have ``purpose: "batch_output"`` and are named
``batch_<batch id>_output.jsonl`` / ``..._error.jsonl``; each exists only when it has a line,
so a batch whose every request failed has ``output_file_id: null``. Lines are OpenAI's
``BatchRequestOutput``: ``{"id": "batch_req_…", "custom_id", "response", "error"}``.

* Output file, a succeeded request: ``"response": {"status_code": 200, "request_id":
  "req_…", "body": <the endpoint's response>}, "error": null``.
* Error file, a failed request, in one of the two forms OpenAI documents (a client must
  handle both): failures alternate, the first (0th, 2nd, …) an HTTP error
  (``"response": {"status_code": 400 or 500, "request_id", "body": {"error": {…}}}``,
  ``"error": null``), the next a non-HTTP error (``"response": null, "error": {"code":
  "simulated_failure", "message"}``).
* Error file of an expired batch: one more line per request that never ran, as OpenAI's
  batch guide shows them: ``"response": null, "error": {"code": "batch_expired", "message":
  "This request could not be executed before the completion window expired."}``. They are
  not counted in ``request_counts.failed``. A cancelled batch writes no line for the
  requests it never ran (OpenAI documents none).

A file is rendered line by line into one growing buffer that becomes the stored bytes.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from batchwatch.simulator.bodies import Answer, request_seed
from batchwatch.simulator.openai.bodies import default_model, request_body, response_body, tokens
from batchwatch.simulator.openai.errors import error_body
from batchwatch.simulator.openai.files import SimFile
from batchwatch.simulator.openai.inputs import BatchRequest
from batchwatch.simulator.openai.lifecycle import BatchPlan

FAILURE_CODE = "simulated_failure"
EXPIRED_ERROR = {
    "code": "batch_expired",
    "message": "This request could not be executed before the completion window expired.",
}


def synthetic_request(endpoint: str, index: int) -> BatchRequest:
    """Request ``index`` (0-based) of a seeded batch: custom id ``request-<index+1>``."""
    return BatchRequest(f"request-{index + 1}", request_body(endpoint, index + 1))


def request_tokens(batch_id: str, endpoint: str, index: int, pad_bytes: int) -> tuple[int, int]:
    """(input, output) tokens of request ``index`` if it succeeds: what its output line's
    body reports, so the batch's ``usage`` adds up to its output file."""
    answer = Answer("", index + 1, 0, request_seed(batch_id, index), pad_bytes)
    return tokens(endpoint, answer)


@dataclass(frozen=True, slots=True)
class ResultSource:
    """What a batch's result files are rendered from. ``requests`` is ``None`` for seeded
    batches, whose requests are synthetic."""

    batch_id: str
    endpoint: str
    requests: tuple[BatchRequest, ...] | None
    plan: BatchPlan
    processed: int  # requests 0 .. processed-1 ran
    finished_at: float
    expires_at: int | None
    expired: bool  # the batch expired: the requests that never ran are errors too

    def request(self, index: int) -> BatchRequest:
        if self.requests is None:
            return synthetic_request(self.endpoint, index)
        return self.requests[index]

    @property
    def failed(self) -> int:
        return self.plan.schedule.failed_among(self.processed)

    @property
    def has_output(self) -> bool:
        return self.processed > self.failed

    @property
    def has_errors(self) -> bool:
        return self.failed > 0 or (self.expired and self.processed < self.plan.total)


def result_file(source: ResultSource, *, errors: bool, file_id: str) -> SimFile:
    """The output file (succeeded requests) or, with ``errors``, the error file."""
    lines = _error_lines(source) if errors else _output_lines(source)
    kind = "error" if errors else "output"
    return SimFile(
        id=file_id,
        filename=f"batch_{source.batch_id}_{kind}.jsonl",
        purpose="batch_output",
        created_at=source.finished_at,
        content=_jsonl(lines),
        expires_at=source.expires_at,
    )


def synthetic_input_file(
    file_id: str, endpoint: str, total: int, created_at: float, expires_at: int | None
) -> SimFile:
    """The input file of seeded batches with ``total`` requests on ``endpoint``."""
    lines = (
        {"custom_id": r.custom_id, "method": "POST", "url": endpoint, "body": r.body}
        for r in (synthetic_request(endpoint, i) for i in range(total))
    )
    return SimFile(file_id, f"seeded-{file_id}.jsonl", "batch", created_at, _jsonl(lines),
                   expires_at)  # fmt: skip


def _jsonl(lines: Iterable[dict[str, Any]]) -> bytes:
    """The lines as JSONL. ``BytesIO.getvalue`` hands over its buffer rather than copying
    it, so a big file exists once in memory, plus the line being written."""
    buffer = io.BytesIO()
    for line in lines:
        buffer.write(json.dumps(line).encode())
        buffer.write(b"\n")
    return buffer.getvalue()


def _line(custom_id: str, response: dict[str, Any] | None, error: Any) -> dict[str, Any]:
    return {"id": f"batch_req_{uuid.uuid4().hex}", "custom_id": custom_id,
            "response": response, "error": error}  # fmt: skip


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"status_code": status, "request_id": f"req_{uuid.uuid4().hex}", "body": body}


def _output_lines(source: ResultSource) -> Iterator[dict[str, Any]]:
    schedule = source.plan.schedule
    for index in range(source.processed):
        if schedule.request_failed(index):
            continue
        request = source.request(index)
        model = request.body.get("model")
        answer = Answer(
            model if isinstance(model, str) else default_model(source.endpoint),
            index + 1,
            int(source.finished_at),
            request_seed(source.batch_id, index),
            schedule.pad_bytes,
        )
        body = response_body(source.endpoint, answer)
        yield _line(request.custom_id, _response(200, body), None)


def _error_lines(source: ResultSource) -> Iterator[dict[str, Any]]:
    schedule = source.plan.schedule
    for index in range(source.processed):
        if not schedule.request_failed(index):
            continue
        custom_id, n = source.request(index).custom_id, index + 1
        if schedule.failed_among(index) % 2:  # an odd-numbered failure: non-HTTP
            error = {"code": FAILURE_CODE, "message": f"Simulated failure of request {n}"}
            yield _line(custom_id, None, error)
            continue
        if request_seed(source.batch_id, index) >> 20 & 1:
            body = error_body(f"Simulated rejection of request {n}")
            yield _line(custom_id, _response(400, body), None)
        else:
            body = error_body(f"Simulated server error in request {n}", "server_error")
            yield _line(custom_id, _response(500, body), None)
    if source.expired:
        for index in range(source.processed, source.plan.total):
            yield _line(source.request(index).custom_id, None, dict(EXPIRED_ERROR))
