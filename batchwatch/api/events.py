"""The event routes: the outbox read as a feed (at once, or held as a long poll until an
event comes), and the same feed as Server-Sent Events (``webhooks.py``: the deliveries).

A waiting request never holds a thread: the routes are coroutines that look at the outbox
every ``TICK`` (an indexed read of one row) and sleep in between. Events this process
records ring the ``Bell``, which ends the sleep at once; events written by another process
sharing the database are seen at the next look.
"""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations at run
# time, and ``stream_start`` is a name local to the function that declares the routes.
import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Collection
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field
from pydantic_core import to_json

from batchwatch.api.reads import json_response, read
from batchwatch.api.schemas import COMMON_ERRORS
from batchwatch.errors import StoreUnavailable
from batchwatch.events import Event, EventType, event_body
from batchwatch.store import Store
from batchwatch.store import events as stored

#: Seconds between two looks at the outbox while a request waits: what an event written by
#: another process waits at most before a long poll or a stream sees it.
TICK = 0.2
MAX_WAIT = 60
_MAX_SEQ = 2**63 - 1  # seqs are 64-bit integers in every supported database
#: Events read per look by a stream (it reads again at once when a look was full).
STREAM_BATCH = 500


def known_query(*names: str) -> Any:
    """A dependency refusing query keys other than ``names``, naming the stray key: a typo
    (``?wiat=30``) would otherwise turn a long poll silently into an immediate answer."""

    def check(request: Request) -> None:
        stray = [k for k in request.query_params if k not in names]
        if stray:
            known = ", ".join(names) or "none"
            raise RequestValidationError(
                [
                    {
                        "type": "extra_forbidden",
                        "loc": ("query", key),
                        "msg": f"unknown query parameter (known: {known})",
                        "input": request.query_params[key],
                    }
                    for key in stray
                ]
            )

    return Depends(check)


class EventOut(BaseModel):
    """An event: ``event_body``'s shape, which the routes send as it is."""

    id: str = Field(description="unique and stable: a receiver deduplicates by it")
    seq: int = Field(description="its place in the order events were recorded")
    type: EventType
    job_id: str
    occurred_at: datetime
    data: dict[str, Any]


class EventListOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[EventOut]
    next_after: int = Field(description="pass as ?after= to read what comes next")
    newest_seq: int = Field(description="the newest event's seq, of any type (0: none yet)")


class Bell:
    """Rung by the store (from the writing thread) after a write that recorded events; ends
    the sleep of every request waiting for events, on whatever event loop it waits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        #: Rings so far: a waiter that read the outbox before a ring and sleeps after it
        #: would miss it; comparing this number closes that gap.
        self.rung = 0

    def ring(self) -> None:
        with self._lock:
            self.rung += 1
            waiting = list(self._waiting)
        for loop, event in waiting:
            with contextlib.suppress(RuntimeError):  # its loop is closed: the server stopped
                loop.call_soon_threadsafe(event.set)

    async def sleep(self, seconds: float, seen: int) -> None:
        """Sleep ``seconds``, or less: until a ring after the ``seen``-th."""
        event = asyncio.Event()
        entry = (asyncio.get_running_loop(), event)
        with self._lock:
            if self.rung != seen:
                return
            self._waiting.add(entry)
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiting.discard(entry)


class Watch:
    """What a waiting request needs: the store, the bell, and whether the daemon stops."""

    def __init__(self, store: Store, bell: Bell, stop: threading.Event | None) -> None:
        self.store = store
        self.bell = bell
        self._stop = stop

    @property
    def stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    async def newest(self) -> int:
        return await read(self.store, lambda: stored.newest_seq(self.store))

    async def look(
        self, scanned: int, types: Collection[EventType], limit: int
    ) -> tuple[list[Event], int, int]:
        """The events after ``scanned`` of ``types``; the seq up to which none is left
        unread; and the newest seq. The first read is of one row, so an idle look is cheap
        enough to repeat every ``TICK``."""
        newest = await self.newest()
        if newest <= scanned:
            return [], scanned, newest
        found = await read(
            self.store, lambda: stored.feed(self.store, scanned, types, limit), limit
        )
        # None of ``types`` up to ``newest``: the next look need not read those again.
        return found, _seq(found[-1]) if found else newest, newest

    async def pause(self, seconds: float, seen: int) -> None:
        await self.bell.sleep(max(0.0, min(TICK, seconds)), seen)


def _seq(e: Event) -> int:
    assert e.seq is not None  # (read from the outbox)
    return e.seq


def event_json(e: Event) -> str:
    return to_json(event_body(e)).decode()


def events_router(store: Store, stop: threading.Event | None = None) -> APIRouter:
    """``stop``: the daemon's shutdown event; waiting requests and streams end when it is
    set, so they do not hold up the server's shutdown."""
    bell = Bell()
    store.on_events.append(bell.ring)
    watch = Watch(store, bell, stop)
    router = APIRouter(prefix="/v1", tags=["events"], responses=COMMON_ERRORS)
    _feed_routes(router, watch)
    return router


TypesQuery = Annotated[
    list[EventType] | None,
    Query(alias="type", description="only events of this type (repeatable; all if absent)"),
]


def _feed_routes(router: APIRouter, watch: Watch) -> None:
    @router.get(
        "/events",
        response_model=EventListOut,
        summary="Events in the order recorded; with wait, a long poll",
        dependencies=[known_query("after", "wait", "type", "limit")],
    )
    async def list_events(
        request: Request,
        *,
        after: Annotated[int, Query(ge=0, le=_MAX_SEQ, description="the last seq read")] = 0,
        wait: Annotated[
            float,
            Query(ge=0, le=MAX_WAIT, description="seconds to hold the request until an event"),
        ] = 0,
        types: TypesQuery = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        found, newest = await _wait_for_events(
            request, watch, after, types or (), limit=limit, wait=wait
        )
        return json_response(
            {
                "object": "list",
                "data": [event_body(e) for e in found],
                "next_after": _seq(found[-1]) if found else after,
                "newest_seq": newest,
            }
        )

    _stream_route(router, watch)


def _stream_route(router: APIRouter, watch: Watch) -> None:
    async def stream_start(
        after: Annotated[
            int | None,
            Query(ge=0, le=_MAX_SEQ, description="start after this seq (default: from now on)"),
        ] = None,
        last_event_id: Annotated[
            int | None,
            Header(
                alias="Last-Event-ID",
                ge=0,
                le=_MAX_SEQ,
                description="a reconnecting client's last seq: takes precedence over after",
            ),
        ] = None,
    ) -> int:
        # Read even when the start is given: a database that is down is a 503 here, before
        # the stream's 200 is sent.
        newest = await watch.newest()
        # A browser reconnects to the same URL with the header: it is the newer position.
        if last_event_id is not None:
            return last_event_id
        return newest if after is None else after

    @router.get(
        "/events/stream",
        response_class=EventSourceResponse,
        summary="Events as Server-Sent Events, from after (or Last-Event-ID) on",
        dependencies=[known_query("after", "type")],
    )
    async def stream_events(
        request: Request,
        start: Annotated[int, Depends(stream_start)],
        types: TypesQuery = None,
    ) -> AsyncIterator[ServerSentEvent]:
        """Each event as ``id:`` (its seq), ``event:`` (its type) and ``data:`` (its JSON);
        a comment every 15 s keeps an idle connection open."""
        async for e in _follow(request, watch, start, types or ()):
            yield ServerSentEvent(raw_data=event_json(e), event=e.type.value, id=str(e.seq))


async def _wait_for_events(
    request: Request,
    watch: Watch,
    after: int,
    types: Collection[EventType],
    *,
    limit: int,
    wait: float,
) -> tuple[list[Event], int]:
    """The first look that finds events, or none once ``wait`` seconds are up (or the
    client has gone, or the daemon stops); with the newest seq."""
    deadline = time.monotonic() + wait
    scanned = after
    while True:
        seen = watch.bell.rung
        found, scanned, newest = await watch.look(scanned, types, limit)
        left = deadline - time.monotonic()
        if found or left <= 0 or watch.stopping or await request.is_disconnected():
            return found, newest
        await watch.pause(left, seen)


async def _follow(
    request: Request, watch: Watch, after: int, types: Collection[EventType]
) -> AsyncIterator[Event]:
    """Every event after ``after`` of ``types``, as it is recorded, until the client goes
    or the daemon stops. A database that fails mid-stream ends the stream: the client
    reconnects with Last-Event-ID, nothing is lost."""
    scanned = after
    while not watch.stopping:
        seen = watch.bell.rung
        try:
            found, scanned, _ = await watch.look(scanned, types, STREAM_BATCH)
        except StoreUnavailable:
            return
        for e in found:
            yield e
        if len(found) == STREAM_BATCH:
            continue  # more is waiting: no pause
        if await request.is_disconnected():
            return
        await watch.pause(TICK, seen)
