"""The fault layer: outermost ASGI middleware that logs each ``/v1`` request and produces the
fault the injector decided for it (the table in ``faults``), in the shapes of the API the
injector's ``FaultProfile`` describes (error bodies, field names).

Closing a connection without an answer needs the connection itself, which ASGI does not
expose: the server must put the asyncio transport in each request's ``scope["extensions"]``
under ``TRANSPORT_EXTENSION`` (``server``'s uvicorn protocol does). After closing it, the
layer waits for the server's ``http.disconnect``, so that uvicorn neither answers with its
own 500 nor logs an error. This module stays server-agnostic ASGI.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from batchwatch.simulator.fault_injector import FaultInjector, RequestRecord
from batchwatch.simulator.faults import (
    DEFAULT_RETRY_AFTER,
    DEFAULT_STALL_SECONDS,
    ERROR_FAULTS,
    RATE_LIMIT,
    FaultProfile,
    FaultRule,
)

GARBAGE_BODY = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
    b"</h1></center><hr><center>nginx</center></body></html>\n"
)
TRANSPORT_EXTENSION = "batchwatch.transport"
SLOW_PIECES = 20  # a slow body goes out in this many pieces, evenly spread over the time


def route_key(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """``"GET /v1/batch/jobs/{job_id}"``: the method and the matching route's template."""
    for route in routes:
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            return f"{scope['method']} {getattr(route, 'path', scope['path'])}"
    return f"{scope['method']} {scope['path']}"


@dataclass(slots=True)
class _Reply:
    """A response captured from the app, to be altered before it is sent. The body is kept
    as the chunks the app sent: a download's are slices of the stored file, not a copy."""

    status: int = 500
    headers: list[tuple[bytes, bytes]] | None = None
    chunks: list[bytes | memoryview] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(len(chunk) for chunk in self.chunks)

    def body(self) -> bytes:
        return b"".join(self.chunks)

    def header_list(self, content_length: int) -> list[tuple[bytes, bytes]]:
        kept = [(k, v) for k, v in self.headers or () if k.lower() != b"content-length"]
        return [*kept, (b"content-length", str(content_length).encode())]

    def start(self, content_length: int) -> Message:
        headers = self.header_list(content_length)
        return {"type": "http.response.start", "status": self.status, "headers": headers}


class FaultLayer:
    """Outermost middleware: logs each ``/v1`` request and injects its fault, if any, as the
    injector's profile says the API would. ``count`` records the requests it answers itself,
    which never reach the gateway."""

    def __init__(
        self,
        app: ASGIApp,
        injector: FaultInjector,
        routes: Sequence[BaseRoute],
        count: Callable[[str], None],
    ) -> None:
        self.app = app
        self.injector = injector
        self.profile = injector.profile
        self.routes = routes
        self.count = count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        route = route_key(self.routes, scope)
        entry = self.injector.begin(route)
        send = self._recording(send, entry)
        rule = entry.rule
        if rule is None:
            await self.app(scope, receive, send)
        elif rule.fault in ("429", *ERROR_FAULTS, "garbage", "reset"):
            self.count(route)  # answered here, unprocessed
            await self._unprocessed(rule, scope, receive, send)
        elif rule.fault == "stall":
            await self.app(scope, receive, _delayed(send, _stall_seconds(rule)))
        elif rule.fault == "slow":
            reply = await self._capture(scope, receive)
            await _trickle(reply, send, _stall_seconds(rule))
        elif rule.fault == "drop_create":
            await self._capture(scope, receive)
            await _hang_up(scope, receive, reset=False)
        else:
            await self._altered(rule, entry, scope, receive, send)

    async def _unprocessed(
        self, rule: FaultRule, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if rule.fault == "reset":
            await _hang_up(scope, receive, reset=True)
            return
        after = str(int(DEFAULT_RETRY_AFTER if rule.retry_after is None else rule.retry_after))
        reply: Response
        if rule.fault == "garbage":
            reply = Response(GARBAGE_BODY, media_type="text/html")
        else:
            status, message = RATE_LIMIT if rule.fault == "429" else ERROR_FAULTS[rule.fault]
            headers = {"Retry-After": after} if status in (429, 503) else None
            body = self.profile.error_body(status, message)
            reply = JSONResponse(body, status, headers=headers)
        await reply(scope, receive, send)

    async def _altered(
        self, rule: FaultRule, entry: RequestRecord, scope: Scope, receive: Receive, send: Send
    ) -> None:
        reply = await self._capture(scope, receive)
        if rule.fault == "truncate":
            size = reply.size
            await send(reply.start(size or 1))  # the full length, however little follows
            halves = _pieces(reply.chunks, size // 2)
            if halves:
                await _send_body(send, halves[0], more=True)
            await _hang_up(scope, receive, reset=False)  # FIN once the part is flushed
            return
        body = _rewritten(reply, rule.fault, entry.pick, self.profile)
        if body is None:
            self.injector.refund(entry)
            body = reply.body()
        await send(reply.start(len(body)))
        await send({"type": "http.response.body", "body": body})

    async def _capture(self, scope: Scope, receive: Receive) -> _Reply:
        reply = _Reply()

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                reply.status, reply.headers = message["status"], list(message.get("headers", []))
            elif message["type"] == "http.response.body" and message.get("body"):
                reply.chunks.append(message["body"])

        await self.app(scope, receive, capture)
        return reply

    def _recording(self, send: Send, entry: RequestRecord) -> Send:
        async def recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.injector.answered(entry, message["status"])
            await send(message)

        return recording


def _stall_seconds(rule: FaultRule) -> float:
    return DEFAULT_STALL_SECONDS if rule.stall_seconds is None else rule.stall_seconds


def _pieces(chunks: Iterable[bytes | memoryview], size: int) -> list[list[memoryview]]:
    """The body cut into consecutive pieces of ``size`` bytes (the last may be shorter),
    each a list of slices of the chunks: cutting copies nothing."""
    if size <= 0:
        return []
    pieces: list[list[memoryview]] = [[]]
    room = size
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            if room == 0:
                pieces.append([])
                room = size
            pieces[-1].append(view[:room])
            room -= len(pieces[-1][-1])
            view = view[len(pieces[-1][-1]) :]
    return pieces if pieces[0] else []


async def _send_body(send: Send, part: Iterable[memoryview], *, more: bool) -> None:
    for view in part:
        await send({"type": "http.response.body", "body": view, "more_body": True})
    if not more:
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _trickle(reply: _Reply, send: Send, seconds: float) -> None:
    """``slow``: the headers at once, then the body in ``SLOW_PIECES`` pieces with equal
    pauses before each, so that the whole body takes ``seconds``."""
    size = reply.size
    await send(reply.start(size))
    pieces = _pieces(reply.chunks, -(-size // SLOW_PIECES)) or [[]]
    for index, part in enumerate(pieces):
        await asyncio.sleep(seconds / len(pieces))
        await _send_body(send, part, more=index < len(pieces) - 1)


def _delayed(send: Send, seconds: float) -> Send:
    async def delayed(message: Message) -> None:
        if message["type"] == "http.response.start":
            await asyncio.sleep(seconds)
        await send(message)

    return delayed


async def _hang_up(scope: Scope, receive: Receive, *, reset: bool) -> None:
    """Close the connection (with an RST if ``reset``), then wait until uvicorn has seen it
    go: returning earlier would make it answer with its own 500."""
    transport = scope.get("extensions", {}).get(TRANSPORT_EXTENSION)
    if not isinstance(transport, asyncio.Transport):
        raise RuntimeError(
            f"this fault closes the connection, so the server must put the transport in "
            f"scope['extensions'][{TRANSPORT_EXTENSION!r}] (start_in_thread and serve do)"
        )
    if transport.is_closing():
        pass  # the client left first: nothing to close
    elif reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:  # linger 0: close() discards the connection with an RST
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()  # sends what was written, then a FIN
    while (await receive())["type"] != "http.disconnect":
        pass  # the request body that was never read


def _rewritten(reply: _Reply, fault: str, pick: float, profile: FaultProfile) -> bytes | None:
    """The body with the fault applied; ``None`` when it cannot carry it."""
    body = _json_object(reply)
    if body is None:
        return None
    # A list is ``{"object": "list", "data": [...]}``, or, in Anthropic's API, has no
    # ``object`` at all: its ``data`` list says it.
    is_list = body.get("object") == "list" or isinstance(body.get("data"), list)
    items = body.get("data") if is_list else [body]
    if not isinstance(items, list):
        return None
    objects = [item for item in items if isinstance(item, dict)]
    if fault == "unknown_status":
        changed = _unknown_status(objects, profile)
    elif objects:
        _drop_required_field(objects, profile, pick)
        changed = True
    else:  # an empty list: its one required field
        changed = body.pop(profile.list_field, None) is not None
    return json.dumps(body, separators=(",", ":")).encode() if changed else None


def _json_object(reply: _Reply) -> dict[str, Any] | None:
    """The body of a 200 that is a JSON object; ``None`` for anything else."""
    if reply.status != 200:
        return None
    try:
        body = json.loads(reply.body())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _unknown_status(jobs: list[dict[str, Any]], profile: FaultProfile) -> bool:
    """Give every job the undocumented status; whether there was one to change."""
    with_status = [job for job in jobs if profile.status_field in job]
    for job in with_status:
        job[profile.status_field] = profile.undocumented_status
    return bool(with_status)


def _drop_required_field(objects: list[dict[str, Any]], profile: FaultProfile, pick: float) -> None:
    """Remove one required field of each object (any field of an object of unknown kind),
    the same place in the list of each, chosen by ``pick``."""
    for item in objects:
        fields = profile.required_fields.get(str(item.get(profile.kind_field)), tuple(item))
        present = [name for name in fields if name in item]
        if present:
            del item[present[int(pick * len(present))]]
