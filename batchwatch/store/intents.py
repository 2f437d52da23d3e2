"""Create intents and the actions log, in the database (the store's second half).

An intent is written, and committed, before a create goes upstream: whatever happens to the
response afterwards, the next attempt under the same Idempotency-Key finds it and looks for
the job instead of creating a second one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, insert, select, update
from sqlalchemy.exc import IntegrityError

from batchwatch.models import ActionRecord, CreateIntent, IntentState
from batchwatch.store import Store, Writer
from batchwatch.store.schema import actions, create_intents


def claim_intent(
    store: Store,
    key: str,
    *,
    request_id: str,
    request_hash: str,
    body: Mapping[str, Any],
    requested_by: str,
    now: datetime,
) -> tuple[CreateIntent, bool]:
    """The intent under ``key``: the existing one, or a new pending one (then True)."""
    existing = get_intent(store, key)
    if existing is not None:
        return existing, False
    row = {
        "key": key,
        "request_id": request_id,
        "request_hash": request_hash,
        "body": dict(body),
        "state": IntentState.PENDING.value,
        "job_id": None,
        "error": None,
        "error_status": None,
        "requested_by": requested_by,
        "created_at": now,
        "updated_at": now,
    }
    try:
        with store.write() as w:
            w.conn.execute(insert(create_intents).values(row))
    except IntegrityError:
        # Another request claimed the key between our read and our insert: theirs stands.
        raced = get_intent(store, key)
        if raced is None:
            raise
        return raced, False
    return _intent(row), True


def get_intent(store: Store, key: str) -> CreateIntent | None:
    with store.reading() as conn:
        row = (
            conn.execute(select(create_intents).where(create_intents.c.key == key))
            .mappings()
            .first()
        )
    return _intent(row) if row else None


def created_with(store: Store, job_id: str) -> Mapping[str, Any] | None:
    """The create body of the job batchwatch created (None: created elsewhere)."""
    query = select(create_intents.c.body).where(
        create_intents.c.job_id == job_id,
        create_intents.c.state == IntentState.CREATED.value,
    )
    with store.reading() as conn:
        body = conn.execute(query).scalar_one_or_none()
    return body if isinstance(body, dict) else None


def finish_intent(writer: Writer, key: str, job_id: str, now: datetime) -> None:
    writer.conn.execute(
        update(create_intents)
        .where(create_intents.c.key == key)
        .values(state=IntentState.CREATED.value, job_id=job_id, updated_at=now)
    )


def fail_intent(store: Store, key: str, status: int | None, error: str, now: datetime) -> None:
    with store.write() as w:
        w.conn.execute(
            update(create_intents)
            .where(
                create_intents.c.key == key,
                create_intents.c.state == IntentState.PENDING.value,
            )
            .values(
                state=IntentState.FAILED.value, error=error, error_status=status, updated_at=now
            )
        )


def retry_failed_intent(store: Store, key: str, now: datetime) -> None:
    """A refused create may be tried again under its key (the body may be fixed upstream,
    e.g. a file that was missing); it becomes pending again."""
    with store.write() as w:
        w.conn.execute(
            update(create_intents)
            .where(
                create_intents.c.key == key,
                create_intents.c.state == IntentState.FAILED.value,
            )
            .values(state=IntentState.PENDING.value, error=None, error_status=None, updated_at=now)
        )


def record_action(writer: Writer, action: ActionRecord) -> None:
    writer.conn.execute(
        insert(actions).values(
            job_id=action.job_id,
            action=action.action,
            requested_by=action.requested_by,
            requested_at=action.requested_at,
            status_after=action.status_after,
        )
    )


def job_actions(store: Store, job_id: str) -> list[ActionRecord]:
    query = select(actions).where(actions.c.job_id == job_id).order_by(actions.c.id)
    with store.reading() as conn:
        return [
            ActionRecord(
                id=r["id"],
                job_id=r["job_id"],
                action=r["action"],
                requested_by=r["requested_by"],
                requested_at=r["requested_at"],
                status_after=r["status_after"],
            )
            for r in conn.execute(query).mappings()
        ]


def _intent(row: Mapping[str, Any] | RowMapping) -> CreateIntent:
    return CreateIntent(
        key=row["key"],
        request_id=row["request_id"],
        request_hash=row["request_hash"],
        body=row["body"],
        state=IntentState(row["state"]),
        job_id=row["job_id"],
        error=row["error"],
        error_status=row["error_status"],
        requested_by=row["requested_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
