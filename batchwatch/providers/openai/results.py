"""How a line of OpenAI's output and error files is read into the ledger: the shape the
ledger module reads by default (``{custom_id, response: {status_code, body}, error}``),
with one difference. An expired batch writes each request it never ran to the error file,
with the error code ``batch_expired``: such a request did not fail, it was not run (OpenAI
does not count it in ``request_counts.failed`` either), and a retry of the ``not_run``
requests is what sends it again."""

from __future__ import annotations

from batchwatch.models import Outcome
from batchwatch.results.ledger import LedgerEntry, ResultSource
from batchwatch.results.ledger import parse_result_line as parse_common_line

#: The error code of a request an expired batch never ran.
EXPIRED = "batch_expired"


def parse_result_line(text: bytes, *, source: ResultSource, line: int) -> LedgerEntry:
    entry = parse_common_line(text, source=source, line=line)
    if source == "error" and entry.error_code == EXPIRED and entry.custom_id is not None:
        return entry._replace(outcome=Outcome.NOT_RUN)
    return entry
