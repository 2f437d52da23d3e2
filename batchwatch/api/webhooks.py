"""The webhook and hook routes: each endpoint with its deliveries by state, the deliveries,
and redelivery of an event."""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations at run
# time.
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from batchwatch.api.events import known_query
from batchwatch.api.reads import json_response, read
from batchwatch.api.schemas import COMMON_ERRORS, error_response
from batchwatch.config_events import HOOK_PREFIX
from batchwatch.events import EventType
from batchwatch.store import Store
from batchwatch.store import events as stored

DeliveryState = Literal["pending", "delivered", "dead"]


class DeliveryOut(BaseModel):
    endpoint: str = Field(description="the webhook's URL, or hook: and the command")
    event_id: str
    event_seq: int
    event_type: EventType
    job_id: str
    state: DeliveryState
    attempts: int
    next_at: datetime = Field(description="pending: not sent again before this time")
    first_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status: int | None = Field(description="the last HTTP status, or a hook's exit code")
    last_error: str | None


class DeliveryListOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[DeliveryOut]


class EndpointOut(BaseModel):
    name: str = Field(description="the webhook's URL, or hook: and the command")
    kind: Literal["webhook", "hook"]
    pending: int
    delivered: int
    dead: int
    disabled_at: datetime | None = Field(description="set when the endpoint answered 410 Gone")
    disabled_reason: str | None


class EndpointListOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[EndpointOut]


class RedeliveredOut(BaseModel):
    event_id: str
    deliveries: int = Field(description="how many endpoints will be sent the event again")


def webhooks_router(store: Store) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["webhooks"], responses=COMMON_ERRORS)
    _delivery_routes(router, store)
    return router


def endpoint_kind(name: str) -> Literal["webhook", "hook"]:
    return "hook" if name.startswith(HOOK_PREFIX) else "webhook"


def delivery_body(row: dict[str, Any]) -> dict[str, Any]:
    """A row of ``stored.delivery_rows`` (the delivery's columns, the event's id and type)
    as ``DeliveryOut``'s JSON."""
    return {
        "endpoint": row["endpoint"],
        "event_id": row["id"],
        "event_seq": row["event_seq"],
        "event_type": row["type"],
        "job_id": row["job_id"],
        "state": row["state"],
        "attempts": row["attempts"],
        "next_at": row["next_at"],
        "first_attempt_at": row["first_attempt_at"],
        "last_attempt_at": row["last_attempt_at"],
        "last_status": row["last_status"],
        "last_error": row["last_error"],
    }


def endpoints_body(store: Store) -> dict[str, Any]:
    by_state = stored.counts(store)
    data = []
    for e in stored.endpoint_rows(store):
        n = by_state.get(e.name, {})
        data.append(
            {
                "name": e.name,
                "kind": endpoint_kind(e.name),
                "pending": n.get("pending", 0),
                "delivered": n.get("delivered", 0),
                "dead": n.get("dead", 0),
                "disabled_at": e.disabled_at,
                "disabled_reason": e.disabled_reason,
            }
        )
    return {"object": "list", "data": data}


NO_DELIVERY: dict[int | str, dict[str, object]] = {
    404: error_response("no such event, or no endpoint took it")
}


def _delivery_routes(router: APIRouter, store: Store) -> None:
    @router.get(
        "/webhooks",
        response_model=EndpointListOut,
        summary="Each webhook and hook: its deliveries by state, and whether it is disabled",
        dependencies=[known_query()],
    )
    async def list_endpoints() -> Response:
        return json_response(await read(store, lambda: endpoints_body(store), 100))

    @router.get(
        "/webhooks/deliveries",
        response_model=DeliveryListOut,
        summary="Deliveries of events to each endpoint, newest event first",
        dependencies=[known_query("state", "limit")],
    )
    async def list_deliveries(
        state: DeliveryState | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        rows = await read(store, lambda: stored.delivery_rows(store, state, limit), limit)
        return json_response({"object": "list", "data": [delivery_body(r) for r in rows]})

    @router.post(
        "/webhooks/deliveries/{event_id}/redeliver",
        response_model=RedeliveredOut,
        summary="Send an event again to every endpoint that took it",
        responses=NO_DELIVERY,
        dependencies=[known_query()],
    )
    async def redeliver(
        event_id: Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[\w.:-]+$")],
    ) -> RedeliveredOut:
        made = await run_in_threadpool(stored.redeliver, store, event_id, datetime.now(UTC))
        store.events_changed()  # the dispatchers send it now, not at their next look
        if not made:
            raise HTTPException(
                status_code=404,
                detail=f"no delivery of event {event_id}: no such event, or no endpoint took it",
            )
        return RedeliveredOut(event_id=event_id, deliveries=made)
