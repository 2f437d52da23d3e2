"""How a line of Mistral's output and error files is read into the ledger: the shape the
ledger module reads by default (``{custom_id, response: {status_code, body}, error}``)."""

from __future__ import annotations

from batchwatch.results.ledger import parse_result_line

__all__ = ["parse_result_line"]
