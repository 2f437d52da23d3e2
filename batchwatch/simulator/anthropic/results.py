"""The results file of an ended batch (``GET /v1/messages/batches/{id}/results``): one JSON
object a line (``MessageBatchIndividualResponse``), ``\\n``-terminated, served as
``application/x-jsonl`` (the media type Anthropic's OpenAPI gives it).

Every request has exactly one line, ``{"custom_id": ..., "result": ...}``, whose result is
one of (the batch's plan decides which, ``lifecycle.result_of``)::

    {"type": "succeeded", "message": {"id": "msg_…", "type": "message", "role": "assistant",
     "model": <the request's>, "content": [{"type": "text", "text": ..., "citations": null}],
     "stop_reason": "end_turn", "stop_sequence": null, "usage": {"input_tokens",
     "output_tokens", "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
     "service_tier": "batch"}}}
    {"type": "errored", "error": {"type": "error", "error": {"type": "invalid_request_error"
     | "api_error", "message": ...}}}          (alternately, the first invalid_request_error)
    {"type": "canceled"}
    {"type": "expired"}

Order: as documented, *not* the request order. The lines come in a permutation drawn from a
``random.Random`` seeded with the batch id: the same batch always gives the same order, and
a batch of two or more requests never gives the input order (an identity draw is rotated by
one), so a client that assumes it fails at once. Token counts come from ``bodies.
request_seed`` (input 20-99, output 10-129): the same request always reports the same usage.

The file is rendered in chunks from frozen records, outside the simulation's lock: a
100,000-request file streams while other requests are served.
"""

from __future__ import annotations

import hashlib
import json
import random
import zlib
from collections.abc import Iterator
from typing import Any

from batchwatch.simulator.anthropic.batches import SimBatch
from batchwatch.simulator.anthropic.errors import base62, error_body
from batchwatch.simulator.anthropic.lifecycle import ResultType, result_of
from batchwatch.simulator.bodies import request_seed

MEDIA_TYPE = "application/x-jsonl"
LINES_PER_CHUNK = 1000
_ERROR_TYPES = ("invalid_request_error", "api_error")


def result_order(batch_id: str, total: int) -> list[int]:
    """The request indices in the order their lines are written."""
    order = list(range(total))
    random.Random(zlib.crc32(batch_id.encode())).shuffle(order)
    if total > 1 and order == sorted(order):
        order = order[1:] + order[:1]
    return order


def result_chunks(batch: SimBatch) -> Iterator[bytes]:
    """The whole file, ``LINES_PER_CHUNK`` lines a chunk."""
    order = result_order(batch.id, batch.plan.total)
    for start in range(0, len(order), LINES_PER_CHUNK):
        lines = (result_line(batch, index) for index in order[start : start + LINES_PER_CHUNK])
        yield "".join(lines).encode()


def result_line(batch: SimBatch, index: int) -> str:
    request = batch.request_at(index)
    kind = result_of(batch.plan, batch.cancel_at, index)
    result: dict[str, Any] = {"type": kind.value}
    if kind is ResultType.SUCCEEDED:
        result["message"] = _message(batch, index, request.custom_id, request.model)
    elif kind is ResultType.ERRORED:
        ordinal = batch.plan.errored_among(index)  # errors before this one
        error_type = _ERROR_TYPES[ordinal % len(_ERROR_TYPES)]
        result["error"] = error_body(error_type, f"Simulated {error_type} in {request.custom_id}")
    body = {"custom_id": request.custom_id, "result": result}
    return json.dumps(body, separators=(",", ":")) + "\n"


def _message(batch: SimBatch, index: int, custom_id: str, model: str) -> dict[str, Any]:
    seed = request_seed(batch.id, index)
    usage = {
        "input_tokens": 20 + seed % 80,
        "output_tokens": 10 + (seed >> 8) % 120,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "service_tier": "batch",
    }
    text = {"type": "text", "text": f"Simulated answer to {custom_id}.", "citations": None}
    return {
        "id": message_id(batch.id, index),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [text],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }


def message_id(batch_id: str, index: int) -> str:
    """``msg_01…``: stable per request, so a second download is the same file."""
    digest = hashlib.blake2b(f"{batch_id}:{index}".encode(), digest_size=17).digest()
    return f"msg_01{base62(int.from_bytes(digest), 22)}"
