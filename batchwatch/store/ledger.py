"""A job's ledger read back: its pages, as the API shows them, and the custom ids of the
requests of some outcomes (what a retry takes). ``results.py`` writes the ledger."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Select,
    Text,
    aggregate_order_by,
    bindparam,
    case,
    cast,
    func,
    or_,
    select,
)

from batchwatch.models import Outcome, ResultsState
from batchwatch.store import Store
from batchwatch.store.schema import ledger, results


def ledger_page(
    store: Store, job_id: str, outcomes: Sequence[Outcome], page: int, page_size: int
) -> tuple[str, int]:
    """One page of a job's ledger in its order, as the JSON array of the API's rows (see
    ``_ledger_json``), and the number of rows that match (from the counts kept at ingest:
    counting 20,000 rows again cost 2.3 ms a page, figure 9); only once the job's results
    are ready (an attempt in progress shows nothing: ``"[]"`` and 0)."""
    state = select(results.c.state, results.c.ledger_rows).where(results.c.job_id == job_id)
    with store.reading() as conn:
        found = conn.execute(state).first()
        if found is None or found[0] != ResultsState.READY.value:
            return "[]", 0
        by_outcome = found[1] or {}
        wanted = [o.value for o in outcomes] or list(by_outcome)
        total = sum(int(by_outcome.get(o, 0)) for o in wanted)
        page_json = _ledger_json(store.is_sqlite, filtered=bool(outcomes))
        text = conn.execute(
            page_json,
            {
                "job_id": job_id,
                "outcomes": [o.value for o in outcomes],
                "limit": page_size,
                "offset": page * page_size,
            },
        ).scalar()
        return text or "[]", total


@functools.cache
def _ledger_json(sqlite: bool, filtered: bool) -> Select[str]:
    """A page of a job's ledger (parameters ``job_id``, ``limit``, ``offset`` and, when
    ``filtered``, ``outcomes``) as the API shows its rows, one JSON array built by the
    database:
    ``{"custom_id", "outcome", "status_code", "error": {"message", "code"} | null, "usage":
    {"prompt_tokens", "completion_tokens", "total_tokens"} | null, "raw", "source",
    "line", "duplicate"}``.

    Built in SQL rather than from Python rows because the page is read while the daemon
    polls: the database works without the interpreter lock, and a page of 100 rows decoded
    and re-encoded in Python waited behind the poll cycles (figure 9, page p99 29-61 ms).
    The statement is built once: building it for every page took 40% of the page's time.
    """
    where = [ledger.c.job_id == bindparam("job_id")]
    if filtered:
        where.append(ledger.c.outcome.in_(bindparam("outcomes", expanding=True)))
    # The page starts at the n found by skipping ``offset`` entries of an index alone: an
    # OFFSET on the page's own rows read every skipped row (page 200 of the failed requests
    # of figure 9's job 3.5 ms in process, against 0.7 ms for the first).
    first = select(ledger.c.n).where(*where).order_by(ledger.c.n).offset(bindparam("offset"))
    rows = (
        select(ledger)
        .where(*where, ledger.c.n >= first.limit(1).scalar_subquery())
        .order_by(ledger.c.n)
        .limit(bindparam("limit"))
        .subquery()
    )
    row = _row_json(rows.c, sqlite)
    if sqlite:
        # SQLite 3.40 has no ORDER BY inside an aggregate; it aggregates the ordered
        # subquery's rows in their order.
        return select(func.json_group_array(row)).select_from(rows)
    return select(cast(aggregate_order_by(func.json_agg(row), rows.c.n), Text)).select_from(rows)


def _row_json(c: Any, sqlite: bool) -> Any:
    """One ledger row (the columns ``c`` of the page) as the API's JSON object."""
    obj = func.json_object if sqlite else func.json_build_object
    error = case(
        (
            or_(c.error_message.is_not(None), c.error_code.is_not(None)),
            obj("message", c.error_message, "code", c.error_code),
        )
    )
    usage = case(
        (
            c.total_tokens.is_not(None),
            obj(
                "prompt_tokens",
                c.prompt_tokens,
                "completion_tokens",
                c.completion_tokens,
                "total_tokens",
                c.total_tokens,
            ),
        )
    )
    # SQLite keeps booleans as 0 and 1: JSON's true and false are asked for by name.
    duplicate = (
        case((c.duplicate, func.json("true")), else_=func.json("false")) if sqlite else c.duplicate
    )
    row = obj(
        "custom_id", c.custom_id,
        "outcome", c.outcome,
        "status_code", c.status_code,
        "error", error,
        "usage", usage,
        "raw", c.raw,
        "source", c.source,
        "line", c.line,
        "duplicate", duplicate,
    )  # fmt: skip
    return row


def _outcome_filter(outcomes: Sequence[Outcome]) -> list[Any]:
    return [ledger.c.outcome.in_([o.value for o in outcomes])] if outcomes else []


def custom_ids(store: Store, job_id: str, outcomes: Sequence[Outcome]) -> list[str]:
    """The custom ids of a job's requests of ``outcomes``, in ledger order (a line whose
    custom id could not be read has none to retry)."""
    query = (
        select(ledger.c.custom_id)
        .where(
            ledger.c.job_id == job_id, ledger.c.custom_id.is_not(None), *_outcome_filter(outcomes)
        )
        .order_by(ledger.c.n)
    )
    return [row[0] for row in store._rows(query)]
