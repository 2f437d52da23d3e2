"""Checks a batch input file before anything is uploaded (pure: bytes in, problems out).

One JSON object per line, in the provider's input format:

* Mistral: ``{"custom_id": "...", "body": {...}}``, ``custom_id`` optional but unique.
* OpenAI: ``{"custom_id": "...", "method": "POST", "url": ENDPOINT, "body": {...}}``, every
  field required, ``url`` the batch's endpoint (OpenAI fails the whole batch otherwise, in
  validation, long after the upload).
* Anthropic: ``{"custom_id": "...", "params": {...}}``, ``custom_id`` required, 1 to 64 of
  letters, digits, ``_`` and ``-`` (the API refuses the whole create otherwise).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from batchwatch.providers import provider

MAX_SHOWN = 20
_ANTHROPIC_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class LineFormat:
    """A provider's request line: where the request is, and what else each line needs."""

    provider: str
    payload: str  # the key holding the request: "body" or "params"
    id_required: bool
    #: OpenAI's lines name the batch's endpoint (``url``); None: the format has no ``url``.
    endpoint: str | None = None

    @property
    def example(self) -> str:
        if self.provider == "openai":
            return '{"custom_id": ..., "method": "POST", "url": ..., "body": {...}}'
        return f'{{"custom_id": ..., "{self.payload}": {{...}}}}'


def line_format(provider: str, endpoint: str | None = None) -> LineFormat:
    if provider == "anthropic":
        return LineFormat(provider, "params", id_required=True)
    if provider == "openai":
        return LineFormat(provider, "body", id_required=True, endpoint=endpoint or "")
    return LineFormat(provider, "body", id_required=False)


MISTRAL_LINES = line_format("mistral")


@dataclass(frozen=True, slots=True)
class FileCheck:
    requests: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems and self.requests > 0


def check_lines(
    lines: Iterable[bytes],
    fmt: LineFormat = MISTRAL_LINES,
    keep: list[dict[str, Any]] | None = None,
) -> FileCheck:
    """Every problem of the lines in ``fmt``; the good lines appended to ``keep`` when given
    (Anthropic's requests are sent inline, so they are read once, here)."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    count = 0
    blank: list[int] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            blank.append(number)  # only a problem if a request follows it
            continue
        problems += [f"line {n}: empty line (every line must hold one request)" for n in blank]
        blank.clear()
        count += 1
        item, problem = _check_line(raw, number, seen, fmt)
        if problem:
            problems.append(f"line {number}: {problem}")
        elif keep is not None:
            keep.append(item)
    if count == 0 and not problems:
        problems.append("the file holds no requests")
    return FileCheck(requests=count, problems=tuple(problems))


def _check_line(
    raw: bytes, number: int, seen: dict[str, int], fmt: LineFormat
) -> tuple[dict[str, Any], str | None]:
    try:
        item = json.loads(raw)
    except UnicodeDecodeError:
        return {}, "not UTF-8 text"
    except json.JSONDecodeError as exc:
        return {}, f"not valid JSON ({exc.msg} at column {exc.colno})"
    if not isinstance(item, dict):
        return {}, f"a JSON {type(item).__name__}, not an object"
    problem = _payload_problem(item, fmt) or _custom_id_problem(item, number, seen, fmt)
    return item, problem


def _payload_problem(item: dict[str, Any], fmt: LineFormat) -> str | None:
    if fmt.payload not in item:
        return f'no "{fmt.payload}" (each line is {fmt.example})'
    if not isinstance(item[fmt.payload], dict):
        return f'"{fmt.payload}" must be a JSON object'
    if fmt.endpoint is None:
        return None
    if item.get("method") != "POST":
        return f'"method" must be "POST" (each line is {fmt.example})'
    if item.get("url") != fmt.endpoint:
        return f'"url" {item.get("url")!r} is not the batch\'s endpoint {fmt.endpoint!r}'
    return None


def _custom_id_problem(
    item: dict[str, Any], number: int, seen: dict[str, int], fmt: LineFormat
) -> str | None:
    custom_id = item.get("custom_id")
    if custom_id is None:
        if not fmt.id_required:
            return None
        return f'no "custom_id" ({provider(fmt.provider).label} needs one on every line)'
    if not isinstance(custom_id, str):
        return '"custom_id" must be a string'
    if fmt.provider == "anthropic" and not _ANTHROPIC_ID.fullmatch(custom_id):
        return f'custom_id "{custom_id}": 1 to 64 letters, digits, "_" or "-" (Anthropic\'s rule)'
    if custom_id in seen:
        return f'custom_id "{custom_id}" repeats line {seen[custom_id]}'
    seen[custom_id] = number
    return None


def describe(check: FileCheck, name: str) -> str:
    """The problems as lines for the terminal, the first ``MAX_SHOWN`` of them."""
    shown = list(check.problems[:MAX_SHOWN])
    hidden = len(check.problems) - len(shown)
    if hidden:
        shown.append(f"... and {hidden} more")
    return "\n".join(f"{name}: {line}" for line in shown)
