"""The files the simulator writes for a job: the output and error files of a job that ended,
and the synthetic input file of a seeded job (docs/mistral-api.md §6). Bodies per endpoint
are ``bodies``'; which request failed, and in which form, is the job's plan (``lifecycle``).

Only the requests processed before the job ended (``completed_requests``, frozen at a
cancel) have a line, in request order; the others are in neither file, so a client finds
them as the input's custom ids absent from both. Every line's ``id`` is ``batch-<first 8 hex
of the job id>-<1-based request index>-<uuid4>``; ``custom_id`` is the input's. One JSON
object a line, ``\\n``-terminated:

* Output file (``sample_type: batch_result``), a succeeded request::

    {"id": ..., "custom_id": ..., "response": {"status_code": 200, "body": <the endpoint's
     response body>}, "error": null}

* Output file, a failed request the endpoint answered with an error (400 or 422, drawn per
  request from the job's seed; the body is Mistral's documented error body)::

    {"id": ..., "custom_id": ..., "response": {"status_code": 400, "body": {"object": "error",
     "message": "Simulated rejection of request <n>", "type": "invalid_request_error",
     "param": null, "code": null}}, "error": null}

  (422: ``"message": "Simulated validation error in request <n>"``.)

* Error file (``sample_type: batch_error``): the format is undocumented upstream; the
  simulator writes::

    {"id": ..., "custom_id": ..., "response": {"status_code": 500, "body": {"object": "error",
     "message": "Simulated failure of request <n>", "type": "server_error", "param": null,
     "code": null}}, "error": {"message": "Simulated failure of request <n>",
     "code": "simulated_failure"}}

So ``succeeded_requests`` is the output's 2xx lines, ``failed_requests`` the error file's
lines plus the output's non-2xx lines, and ``completed_requests`` both files' lines.

* Synthetic input file of a seeded job (``sample_type: batch_request``, ``source: upload``,
  as if the user had uploaded it): ``{"custom_id": "<i>", "body": <request body>}`` for ``i``
  = 0, 1, …; ``body.model`` is there only when the job names no model.

A file is rendered line by line into one growing buffer, which becomes the stored bytes
without a copy: no list of lines, no join (a 100,000-request padded file is over 100 MB).
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from batchwatch.simulator.api_errors import error_body
from batchwatch.simulator.bodies import (
    DEFAULT_MODEL,
    Answer,
    request_body,
    request_seed,
    response_body,
)
from batchwatch.simulator.files import RequestLine, StoredFile
from batchwatch.simulator.lifecycle import JobPlan

ERROR_CODE = "simulated_failure"
OUTPUT_ERRORS = {
    400: "Simulated rejection of request {n}",
    422: "Simulated validation error in request {n}",
}


@dataclass(frozen=True, slots=True)
class ResultSource:
    """What a job's result files are rendered from. ``requests`` is ``None`` for seeded
    jobs, whose requests are synthetic (``synthetic_request``)."""

    job_id: str
    endpoint: str
    model: str | None
    requests: tuple[RequestLine, ...] | None
    plan: JobPlan
    processed: int  # requests 0 .. processed-1 ran
    finished_at: float

    def request(self, index: int) -> RequestLine:
        if self.requests is None:
            return synthetic_request(self.endpoint, self.model, index)
        return self.requests[index]


def synthetic_request(endpoint: str, model: str | None, index: int) -> RequestLine:
    """Request ``index`` (0-based) of a seeded job: custom id ``"<index>"``."""
    return RequestLine(str(index), request_body(endpoint, model, index + 1))


def synthetic_input_file(
    file_id: str, endpoint: str, model: str | None, total: int, created_at: float
) -> StoredFile:
    """The input file of seeded jobs with ``total`` requests on ``endpoint``."""
    lines = (
        {"custom_id": line.custom_id, "body": line.body}
        for line in (synthetic_request(endpoint, model, i) for i in range(total))
    )
    content, count = _jsonl(lines)
    return StoredFile(
        id=file_id,
        filename=f"seeded-{file_id}.jsonl",
        purpose="batch",
        sample_type="batch_request",
        source="upload",
        created_at=created_at,
        content=content,
        num_lines=count,
    )


def result_file(source: ResultSource, *, errors: bool, file_id: str) -> StoredFile:
    """The output file (succeeded requests and those answered with a non-2xx status) or,
    with ``errors``, the error file."""
    wanted = (
        index for index in range(source.processed) if source.plan.in_error_file(index) == errors
    )
    render = _error_line if errors else _output_line
    content, count = _jsonl(render(source, index) for index in wanted)
    kind = "error" if errors else "output"
    return StoredFile(
        id=file_id,
        filename=f"batch-{source.job_id}-{kind}.jsonl",
        purpose="batch",
        sample_type="batch_error" if errors else "batch_result",
        source="mistral",
        created_at=source.finished_at,
        content=content,
        num_lines=count,
    )


def _jsonl(lines: Iterable[dict[str, Any]]) -> tuple[bytes, int]:
    """The lines as JSONL, and how many. ``BytesIO.getvalue`` hands over its buffer rather
    than copying it, so the file exists once in memory, plus the line being written."""
    buffer = io.BytesIO()
    count = 0
    for line in lines:
        buffer.write(json.dumps(line).encode())
        buffer.write(b"\n")
        count += 1
    return buffer.getvalue(), count


def _line_id(source: ResultSource, index: int) -> str:
    return f"batch-{source.job_id.replace('-', '')[:8]}-{index + 1}-{uuid.uuid4()}"


def _output_line(source: ResultSource, index: int) -> dict[str, Any]:
    request = source.request(index)
    seed = request_seed(source.job_id, index)
    if source.plan.request_failed(index):
        status = 400 if seed >> 20 & 1 else 422
        message = OUTPUT_ERRORS[status].format(n=index + 1)
        body = error_body(message, "invalid_request_error")
    else:
        status = 200
        model = source.model or str(request.body.get("model") or DEFAULT_MODEL)
        answer = Answer(model, index + 1, int(source.finished_at), seed, source.plan.pad_bytes)
        body = response_body(source.endpoint, answer)
    return {
        "id": _line_id(source, index),
        "custom_id": request.custom_id,
        "response": {"status_code": status, "body": body},
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
