"""Values as the database drivers take and return them: timestamps (UTC) and JSON text.

The one definition of how a timestamp and a JSON value are stored and read back. The bulk
statements and the row decoder use these functions on driver values; ``schema.UTCDateTime``
makes SQLAlchemy's own statements use the same ones.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def json_text(value: Any) -> str:
    """A JSON column's value as the text both databases are given (cast in the statement)."""
    # SQLAlchemy's JSON type stores None as the JSON text 'null'; so does this.
    return json.dumps(value)


def utc(value: datetime | None) -> datetime | None:
    """An aware timestamp in UTC. A naive one is refused: its zone would be a guess."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC)


def _sqlite_time(value: datetime | None) -> str | None:
    """SQLite has no time zones: UTC as naive text, in SQLAlchemy's own ``DATETIME`` form
    (``2026-11-26 12:00:00.250000``), which sorts and compares as the instants do."""
    value = utc(value)
    return None if value is None else value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _pg_time(value: datetime | None) -> str | None:
    """PostgreSQL: ISO 8601 text with its offset, for a ``timestamptz`` cast."""
    value = utc(value)
    return None if value is None else value.isoformat()


def decode_time(value: Any) -> datetime | None:
    """A timestamp as either driver returns it (SQLite text, PostgreSQL's aware datetime),
    always aware and in UTC. A decoded value passes through unchanged."""
    if value is None:
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def decode_json(value: Any) -> Any:
    """A JSON column as either driver returns it: SQLite text, or PostgreSQL's decoded value.
    (batchwatch's JSON columns hold lists, objects or null, never a bare string.)"""
    return json.loads(value) if isinstance(value, str) else value
