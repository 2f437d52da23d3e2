"""A batch's input file: its request lines, and what OpenAI's validation finds wrong in them.

Each non-blank line must be ``{"custom_id", "method": "POST", "url", "body": {...}}`` (OpenAI's
``BatchRequestInput``). Upstream, a bad file does not make the create fail: the batch is
accepted, sits in ``validating``, then goes ``failed`` with every problem in ``errors.data``
as ``{"code", "message", "line", "param"}`` (``line`` 1-based). The simulator finds the
problems at create and shows them when validation ends. Codes, as observed upstream:

* ``invalid_json_line``: the line is not a JSON object.
* ``url_mismatch``: its ``url`` is not the batch's endpoint.
* ``duplicate_custom_id``: a ``custom_id`` already used by an earlier line.
* ``model_mismatch``: a ``body.model`` other than the first line's (one model a file).
* ``empty_file``: no line at all; ``too_many_tasks``: more than 50,000 lines.
* ``missing_required_parameter`` (a field absent or of the wrong type) and ``invalid_value``
  (``method`` other than ``POST``) are the simulator's names, after OpenAI's codes for the
  same problems in a synchronous request: the batch documentation names no code for them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

MAX_REQUESTS = 50_000


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One request of a batch (a valid input line)."""

    custom_id: str
    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class LineError:
    """One entry of a failed batch's ``errors.data`` (OpenAI's ``BatchError``)."""

    code: str
    message: str
    line: int | None = None
    param: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "param": self.param,
                "line": self.line}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ParsedInput:
    requests: tuple[BatchRequest, ...]
    errors: tuple[LineError, ...]
    model: str | None  # the first line's body.model, shown as the batch's model


def parse_input(content: bytes, endpoint: str) -> ParsedInput:
    """The requests of an input file and, if it does not validate, why."""
    text = content.decode("utf-8", errors="replace")
    requests: list[BatchRequest] = []
    errors: list[LineError] = []
    seen: set[str] = set()
    model: str | None = None
    numbered = [(n, raw) for n, raw in enumerate(text.splitlines(), start=1) if raw.strip()]
    for number, raw in numbered:
        parsed, problems = _check_line(raw, number, endpoint)
        if parsed is not None:
            line_model = parsed.body.get("model")
            if model is None and isinstance(line_model, str):
                model = line_model
            problems.extend(_cross_line_problems(parsed, number, seen, model))
            seen.add(parsed.custom_id)
            requests.append(parsed)
        errors.extend(problems)
    if not numbered:
        errors.append(LineError("empty_file", "The input file has no requests."))
    elif len(numbered) > MAX_REQUESTS:
        message = f"The input file has {len(numbered)} requests; the limit is {MAX_REQUESTS}."
        errors.append(LineError("too_many_tasks", message))
    return ParsedInput(tuple(requests), tuple(errors), model)


def _check_line(
    raw: str, number: int, endpoint: str
) -> tuple[BatchRequest | None, list[LineError]]:
    try:
        line = json.loads(raw)
    except json.JSONDecodeError:
        line = None
    if not isinstance(line, dict):
        message = "This line is not parseable as valid JSON."
        return None, [LineError("invalid_json_line", message, number)]
    problems = list(_field_problems(line, number, endpoint))
    custom_id, body = line.get("custom_id"), line.get("body")
    if not isinstance(custom_id, str) or not isinstance(body, dict):
        return None, problems
    return BatchRequest(custom_id, body), problems


def _field_problems(line: Mapping[str, Any], number: int, endpoint: str) -> Iterator[LineError]:
    for field, kind in (("custom_id", str), ("method", str), ("url", str), ("body", dict)):
        if not isinstance(line.get(field), kind):
            message = f"Missing required parameter: '{field}'."
            yield LineError("missing_required_parameter", message, number, field)
    method, url = line.get("method"), line.get("url")
    if isinstance(method, str) and method != "POST":
        message = f"Invalid method {method!r}: only 'POST' is supported."
        yield LineError("invalid_value", message, number, "method")
    if isinstance(url, str) and url != endpoint:
        message = f"The url {url!r} does not match the batch's endpoint {endpoint!r}."
        yield LineError("url_mismatch", message, number, "url")


def _cross_line_problems(
    request: BatchRequest, number: int, seen: set[str], model: str | None
) -> Iterator[LineError]:
    if request.custom_id in seen:
        message = f"The custom_id {request.custom_id!r} is used by an earlier line."
        yield LineError("duplicate_custom_id", message, number, "custom_id")
    line_model = request.body.get("model")
    if model is not None and isinstance(line_model, str) and line_model != model:
        message = f"The model {line_model!r} differs from the file's model {model!r}."
        yield LineError("model_mismatch", message, number, "body.model")
