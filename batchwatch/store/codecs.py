"""Values as the database drivers take and return them: timestamps (UTC) and JSON text.

The bulk statements and the row decoder work on driver values, below SQLAlchemy's type
processing; these are their codecs.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def json_text(value: Any) -> str:
    """A JSON column's value as the text both databases are given (cast in the statement)."""
    # SQLAlchemy's JSON type stores None as the JSON text 'null'; so does this.
    return json.dumps(value)


def _sqlite_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _pg_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC).isoformat()


def decode_time(value: Any) -> datetime | None:
    """A timestamp as either driver returns it: SQLite text, or PostgreSQL's aware datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_COMMON_JSON: dict[str, Any] = {"[]": [], "null": None}


def decode_json(value: Any) -> Any:
    """A JSON column as either driver returns it: SQLite text, or PostgreSQL's decoded value.
    (batchwatch's JSON columns hold lists, objects or null, never a bare string.)"""
    if not isinstance(value, str):
        return value
    if value in _COMMON_JSON:  # most jobs have no errors; many have no metadata
        common = _COMMON_JSON[value]
        return [] if common == [] else common
    return json.loads(value)
