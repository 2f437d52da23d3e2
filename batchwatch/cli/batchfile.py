"""Checks a batch input file before anything is uploaded (pure: bytes in, problems out).

Mistral's input format: one JSON object per line, ``{"custom_id": "...", "body": {...}}``,
``body`` required, ``custom_id`` optional but unique when given.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

MAX_SHOWN = 20


@dataclass(frozen=True, slots=True)
class FileCheck:
    requests: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems and self.requests > 0


def check_lines(lines: Iterable[bytes]) -> FileCheck:
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
        problem = _check_line(raw, number, seen)
        if problem:
            problems.append(f"line {number}: {problem}")
    if count == 0 and not problems:
        problems.append("the file holds no requests")
    return FileCheck(requests=count, problems=tuple(problems))


def _check_line(raw: bytes, number: int, seen: dict[str, int]) -> str | None:  # noqa: PLR0911 - one guard per rule
    try:
        item = json.loads(raw)
    except UnicodeDecodeError:
        return "not UTF-8 text"
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg} at column {exc.colno})"
    if not isinstance(item, dict):
        return f"a JSON {type(item).__name__}, not an object"
    if "body" not in item:
        return 'no "body" (each line is {"custom_id": ..., "body": {...}})'
    if not isinstance(item["body"], dict):
        return '"body" must be a JSON object'
    custom_id = item.get("custom_id")
    if custom_id is None:
        return None
    if not isinstance(custom_id, str):
        return '"custom_id" must be a string'
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
