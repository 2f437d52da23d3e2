"""Writing events into the outbox, inside the transaction of what they report (the write
side of ``store/events.py``, apart so that ``writes.py`` can use it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from batchwatch.events import Event
from batchwatch.store.bulk import Bulk
from batchwatch.store.schema import events

EVENT_COLUMNS = (
    events.c.id,
    events.c.type,
    events.c.job_id,
    events.c.occurred_at,
    events.c.data,
)


def data_text(data: Any) -> str:
    """An event's ``data`` as stored: JSON text, times in RFC 3339 with ``Z``."""
    return orjson.dumps(data, option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC).decode()


def insert_events(bulk: Bulk, found: Sequence[Event]) -> None:
    """Insert ``found`` into the outbox, in the caller's transaction."""
    if not found:
        return
    rows = (
        (e.id, e.type.value, e.job_id, bulk.time(e.occurred_at), data_text(e.data)) for e in found
    )
    bulk.insert(events, EVENT_COLUMNS, rows)
