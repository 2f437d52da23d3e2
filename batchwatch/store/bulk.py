"""Set-based statements for the poll cycle's write: thousands of rows, a handful of round trips.

A cycle over 10,000 jobs reads 10,000 rows and may update as many, each with a transition
and a progress sample. Through SQLAlchemy's per-row parameter processing that costs seconds;
here each statement is built once from the ``Table`` (so column names cannot drift from the
schema) and given plain driver values, converted by this module's own small encoders:

* SQLite: ``executemany`` of one prepared statement (the loop runs inside the driver) and
  ``json_each`` to pass a whole id list as one parameter. Timestamps are written in the very
  text form SQLAlchemy's SQLite ``DateTime`` writes and parses (naive UTC, microseconds).
* PostgreSQL: one statement per table whatever the row count. The rows travel as a single
  JSON array of arrays, read back with ``json_array_elements`` and cast column by column,
  for ``INSERT ... SELECT`` and ``UPDATE ... FROM``; id lists likewise. (One text parameter
  is dumped by the json module in C; a list parameter per column would be dumped by the
  driver value by value.) Timestamps travel as ISO 8601 text with their offset.

Everything runs on the caller's connection, inside its transaction.
"""

# Statements here are built from the schema's own table and column names, never from input;
# every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection, Table
from sqlalchemy.types import JSON, BigInteger, Boolean, Integer

from batchwatch.store.codecs import _pg_time, _sqlite_time
from batchwatch.store.schema import UTCDateTime

Row = tuple[Any, ...]


def _pg_type(column: Column[Any]) -> str:
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return "timestamptz"
    if isinstance(kind, JSON):
        return "json"  # given as text holding JSON: ->> unwraps it, the cast parses it
    if isinstance(kind, Boolean):
        return "boolean"
    if isinstance(kind, BigInteger):
        return "bigint"
    if isinstance(kind, Integer):
        return "integer"
    return "text"


class Bulk:
    """Bulk reads and writes on one connection (SQLite or PostgreSQL)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sqlite = conn.dialect.name == "sqlite"
        if not self.sqlite and conn.dialect.driver != "psycopg":
            raise ValueError(f"unsupported database driver {conn.dialect.driver!r}")

    # ---- values: callers pass driver values, made once per value by these ---------------

    def time(self, value: datetime | None) -> Any:
        """A ``UTCDateTime`` value as this driver takes it."""
        return _sqlite_time(value) if self.sqlite else _pg_time(value)

    @staticmethod
    def _pg_rows(columns: Sequence[Column[Any]], names: Sequence[str]) -> str:
        """PostgreSQL: a subquery of the rows passed as one JSON array of arrays (one
        parameter, parsed by the server), each cell cast to its column's type."""
        cells = []
        for n, (column, name) in enumerate(zip(columns, names, strict=True)):
            kind = _pg_type(column)
            cell = f"(r->>{n})" if kind == "text" else f"(r->>{n})::{kind}"
            cells.append(f"{cell} AS {name}")
        return f"(SELECT {', '.join(cells)} FROM jsonb_array_elements(%s::jsonb) AS r)"

    # ---- statements --------------------------------------------------------------------

    def select_in(
        self, table: Table, columns: Sequence[Column[Any]], ids: Sequence[str]
    ) -> Iterator[Row]:
        """``columns`` of the rows of ``table`` whose primary key ``id`` is in ``ids``: one
        statement, the id list passed as a single parameter. Rows are yielded as the cursor
        gives them, not gathered first: 10,000 of them need not be alive at once."""
        if not ids:
            return iter(())
        if self.sqlite:
            names = ", ".join(c.name for c in columns)
            sql = f"SELECT {names} FROM {table.name} WHERE id IN (SELECT value FROM json_each(?))"
            param: Any = (json.dumps(list(ids)),)
        else:
            # JSON as its text, as SQLite gives it: the row decoder then decodes a value
            # shared by many rows once (psycopg would decode it in every row).
            names = ", ".join(
                f"{c.name}::text" if isinstance(c.type, JSON) else c.name for c in columns
            )
            sql = (
                f"SELECT {names} FROM {table.name} "
                "WHERE id IN (SELECT jsonb_array_elements_text(%s::jsonb))"
            )
            param = (json.dumps(list(ids)),)
        return iter(self.conn.exec_driver_sql(sql, param))

    def _executemany(self, sql: str, rows: Iterable[Row]) -> int:
        """SQLite: one prepared statement run for each row (the loop runs in the driver),
        through SQLAlchemy, which wraps the driver's errors; returns the rows changed. (The
        driver's raw cursor was no faster: 10,000 status changes, A/B in one process, 0.99x.)"""
        params = list(rows)
        if not params:
            return 0
        return int(self.conn.exec_driver_sql(sql, params).rowcount)

    def insert(
        self,
        table: Table,
        columns: Sequence[Column[Any]],
        rows: Iterable[Row],
        numbered: Column[Any] | None = None,
    ) -> None:
        """Rows of driver values (see ``time`` and ``json``), in ``columns`` order.
        ``numbered``: a column each row also gets, the highest stored value of it among the
        rows of the same first column, plus one (at most one new row per such value)."""
        names = ", ".join(c.name for c in columns)
        key = columns[0].name
        if self.sqlite:
            marks = ", ".join(f"?{n}" for n in range(1, len(columns) + 1))
            if numbered is not None:
                names += f", {numbered.name}"
                marks += f", {_next_number(table, numbered, key, '?1')}"
            self._executemany(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", rows)
            return
        rows = list(rows)
        if not rows:
            return
        source = self._pg_rows(columns, [c.name for c in columns])
        values = ", ".join(f"v.{c.name}" for c in columns)
        if numbered is not None:
            names += f", {numbered.name}"
            values += f", {_next_number(table, numbered, key, f'v.{key}')}"
        sql = f"INSERT INTO {table.name} ({names}) SELECT {values} FROM {source} AS v"
        self.conn.exec_driver_sql(sql, (json.dumps(rows),))

    def update_where(
        self,
        table: Table,
        columns: Sequence[Column[Any]],
        keys: Sequence[Column[Any]],
        rows: Iterable[Row],
        bump: Column[Any] | None = None,
    ) -> int:
        """Set ``columns`` on each row matched by ``keys``; a row is its column values and
        then its key values, all driver values. Returns how many rows matched (the caller's
        compare-and-set). ``bump``: a counter each updated row also moves by one."""
        if self.sqlite:
            sets = ", ".join(f"{c.name} = ?" for c in columns) + _bumped(bump)
            where = " AND ".join(f"{k.name} = ?" for k in keys)
            return self._executemany(f"UPDATE {table.name} SET {sets} WHERE {where}", rows)
        rows = list(rows)
        if not rows:
            return 0
        # The keys get their own names in the unnest: a key may also be a column being set
        # (transition_count: compared with the old value, set to the new one).
        names = [c.name for c in columns] + [f"key_{k.name}" for k in keys]
        source = self._pg_rows([*columns, *keys], names)
        sets = ", ".join(f"{c.name} = v.{c.name}" for c in columns) + _bumped(bump)
        where = " AND ".join(f"{table.name}.{k.name} = v.key_{k.name}" for k in keys)
        sql = f"UPDATE {table.name} SET {sets} FROM {source} AS v WHERE {where}"
        result = self.conn.exec_driver_sql(sql, (json.dumps(rows),))
        return int(result.rowcount)

    def set_for_ids(
        self,
        table: Table,
        column: Column[Any],
        value: Any,
        ids: Sequence[str],
        bump: Column[Any] | None = None,
    ) -> None:
        """One column set to one value on every row whose ``id`` is in ``ids`` (``bump``: as
        in ``update_where``)."""
        if not ids:
            return
        if self.sqlite:
            sql = (
                f"UPDATE {table.name} SET {column.name} = ?{_bumped(bump)} "
                "WHERE id IN (SELECT value FROM json_each(?))"
            )
            self.conn.exec_driver_sql(sql, (value, json.dumps(list(ids))))
        else:
            sql = (
                f"UPDATE {table.name} SET {column.name} = %s::{_pg_type(column)}{_bumped(bump)} "
                "WHERE id IN (SELECT jsonb_array_elements_text(%s::jsonb))"
            )
            self.conn.exec_driver_sql(sql, (value, json.dumps(list(ids))))

    def newest_in(
        self,
        table: Table,
        columns: Sequence[Column[Any]],
        ids: Sequence[str],
        *,
        key: Column[Any],
        order: Column[Any],
        n: int,
    ) -> Iterator[Row]:
        """``columns`` of the ``n`` newest rows (highest ``order``) of ``table`` for each value
        of ``key`` in ``ids``, in no particular order: one statement, each value's rows read
        from the end of an index on ``(key, order)`` (``progress``: its primary key), never
        the whole history of a value. ``(key, order)`` must be unique."""
        if not ids:
            return iter(())
        names = ", ".join(f"t.{c.name}" for c in columns)
        where = f"n.{key.name} = k.value"
        last = f"FROM {table.name} AS n WHERE {where} ORDER BY n.{order.name} DESC LIMIT {n:d}"
        if self.sqlite:  # (json_each has ``key`` and ``id`` columns: every name is qualified)
            sql = (
                f"SELECT {names} FROM json_each(?) AS k JOIN {table.name} AS t"
                f" ON t.{key.name} = k.value AND t.{order.name} IN (SELECT n.{order.name} {last})"
            )
        else:
            sql = (
                f"SELECT {names} FROM jsonb_array_elements_text(%s::jsonb) AS k(value) "
                f"CROSS JOIN LATERAL (SELECT n.* {last}) AS t"
            )
        return iter(self.conn.exec_driver_sql(sql, (json.dumps(list(ids)),)))


def _bumped(counter: Column[Any] | None) -> str:
    """The SET clause's tail that moves ``counter`` by one (nothing without one)."""
    return "" if counter is None else f", {counter.name} = {counter.name} + 1"


def _next_number(table: Table, column: Column[Any], key: str, value: str) -> str:
    """SQL for one more than the highest ``column`` of ``table``'s rows whose ``key`` is
    ``value`` (1 for none): read from the end of an index on ``(key, column)``."""
    return (
        f"(SELECT coalesce(max(n.{column.name}), 0) + 1 FROM {table.name} AS n"
        f" WHERE n.{key} = {value})"
    )
