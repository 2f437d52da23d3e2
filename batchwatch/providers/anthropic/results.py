"""How a line of a Message Batch's results is read into the ledger.

A line is ``{"custom_id", "result": {"type": ...}}``: ``succeeded`` (the ``message``, with
its ``usage``), ``errored`` (``error``: an error body, ``{"type": "error", "error": {"type",
"message"}}``), ``canceled`` or ``expired`` (never run: ``not_run``). Lines come in no
particular order; the ledger matches them on ``custom_id``. Tokens: ``input_tokens`` is
the prompt, ``output_tokens`` the completion.
"""

from __future__ import annotations

from typing import Any

from batchwatch.models import Outcome
from batchwatch.results.ledger import (
    LedgerEntry,
    ResultSource,
    custom_id_of,
    load_object,
    raw_text,
    text_of,
    token_count,
)

_NOT_RUN = ("canceled", "expired")


def parse_result_line(text: bytes, *, source: ResultSource, line: int) -> LedgerEntry:
    """One results line as an entry; total: never raises, whatever the bytes."""
    obj = load_object(text)
    result = obj.get("result") if obj is not None else None
    kind = result.get("type") if isinstance(result, dict) else None
    custom_id = custom_id_of(obj) if obj is not None else None
    if custom_id is None or not isinstance(result, dict):
        return LedgerEntry(custom_id, Outcome.FAILED, source, line, raw=raw_text(text))
    if kind == "succeeded":
        prompt, completion = _usage(result.get("message"))
        total = prompt + completion if prompt is not None and completion is not None else None
        return LedgerEntry(
            custom_id, Outcome.SUCCEEDED, source, line, prompt_tokens=prompt,
            completion_tokens=completion, total_tokens=total,
        )  # fmt: skip
    if kind in _NOT_RUN:
        return LedgerEntry(custom_id, Outcome.NOT_RUN, source, line, error_code=kind)
    if kind == "errored":
        message, code = _error(result.get("error"))
        return LedgerEntry(
            custom_id, Outcome.FAILED, source, line, error_message=message, error_code=code
        )
    return LedgerEntry(custom_id, Outcome.FAILED, source, line, raw=raw_text(text))


def _usage(message: Any) -> tuple[int | None, int | None]:
    usage = message.get("usage") if isinstance(message, dict) else None
    if not isinstance(usage, dict):
        return None, None
    return token_count(usage.get("input_tokens")), token_count(usage.get("output_tokens"))


def _error(body: Any) -> tuple[str | None, str | None]:
    """The message and type of an error body (``{"type": "error", "error": {...}}``)."""
    inner = body.get("error") if isinstance(body, dict) else None
    if not isinstance(inner, dict):
        return None, None
    message, kind = inner.get("message"), inner.get("type")
    return (
        text_of(message) if isinstance(message, str) else None,
        text_of(kind) if isinstance(kind, str) else None,
    )
