"""Fault injection for the simulator: the upstream failures batchwatch must survive, on demand.

A fault is chosen per ``/v1`` request by the first matching rule whose dice roll (a seeded
``random.Random``, so a run can be replayed) comes up; ``/_sim`` routes are never faulted.
What the client sees, and how each fault is produced at the socket level:

=================  ========================================================================
``429``            429, Mistral's observed body ``{"message": ...}``, ``Retry-After``. Not
                   processed, like a gateway's rejection.
``500``..``504``   that status and Mistral's documented error body; 503 has ``Retry-After``.
                   Not processed.
``stall``          processed at once, then the response waits ``stall_seconds`` before its
                   first byte: a client with a shorter timeout times out.
``reset``          not processed; the socket is closed with ``SO_LINGER`` 0, so the kernel
                   sends an RST and the client gets "connection reset" with no response.
``drop_create``    ``POST /v1/batch/jobs`` only: the job *is* created, then the connection is
                   closed (FIN) without a byte of response: the lost-response case.
``truncate``       processed; the real headers go out with the full ``Content-Length``, then
                   half the body, then a FIN: the client's read is incomplete.
``garbage``        not processed; a 200 whose body is a proxy's HTML page, not JSON.
``missing_field``  processed; each job (or file) object of the 200 body, or the list's
                   ``total`` when ``data`` is empty, lacks one required field, picked by the
                   seeded generator.
``unknown_status`` processed; each job object of the 200 body says ``"PAUSED"``, a status
                   Mistral never documented. Only that response: the job's state is unchanged.
=================  ========================================================================

A body fault (``missing_field``, ``unknown_status``) on a response that is not a 200 JSON
object (a 404, say) leaves it alone and is not counted as fired.

Closing a connection without an answer needs the connection itself, which ASGI does not
expose: the server must put the asyncio transport in each request's ``scope["extensions"]``
under ``TRANSPORT_EXTENSION`` (``simulator.py``'s uvicorn protocol does). After closing it,
the layer waits for the server's ``http.disconnect``, so that uvicorn neither answers with its
own 500 nor logs an error. This module stays server-agnostic ASGI.

Control: ``Simulation.faults`` (a ``FaultInjector``: ``set(rules, seed)``, ``clear()``,
``rules()``, ``requests()``) in-process; ``GET/POST/DELETE /_sim/faults`` over HTTP;
``batchwatch simulate --faults 429:0.05,reset:0.01``. ``GET /_sim/requests`` is the log of
the last 100,000 ``/v1`` requests (arrival, route key, status sent or null, fault), which
tests use to prove, say, that nothing was sent inside a ``Retry-After`` window; ``POST
/_sim/stats/reset`` clears it. A request answered by a fault still counts in ``/_sim/stats``.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from batchwatch.simulator.files import error_body

ERROR_FAULTS: dict[str, tuple[int, str]] = {
    "500": (500, "Internal server error"),
    "502": (502, "Bad gateway: the upstream service did not answer"),
    "503": (503, "Service unavailable: the service is overloaded, try again later"),
    "504": (504, "Gateway timeout: the upstream service took too long to answer"),
}
FAULTS = (
    "429", *ERROR_FAULTS, "stall", "reset", "drop_create", "truncate", "garbage",
    "missing_field", "unknown_status",
)  # fmt: skip
DEFAULT_RETRY_AFTER = 1.0
DEFAULT_STALL_SECONDS = 5.0
RATE_LIMIT_BODY = {"message": "Requests rate limit exceeded"}  # observed, not documented
UNDOCUMENTED_STATUS = "PAUSED"
GARBAGE_BODY = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
    b"</h1></center><hr><center>nginx</center></body></html>\n"
)

CREATE_ROUTE = "POST /v1/batch/jobs"
JOB_ROUTES = frozenset(
    {"GET /v1/batch/jobs", CREATE_ROUTE, "GET /v1/batch/jobs/{job_id}",
     "POST /v1/batch/jobs/{job_id}/cancel"}
)  # fmt: skip
BINARY_ROUTES = frozenset({"GET /v1/files/{file_id}/content"})
# Required fields per ``object`` (docs/mistral-api.md §1.3, §2); what ``missing_field`` removes.
REQUIRED_FIELDS = {
    "batch": ("id", "input_files", "endpoint", "errors", "status", "created_at",
              "total_requests", "completed_requests", "succeeded_requests", "failed_requests"),
    "file": ("id", "object", "bytes", "created_at", "filename", "purpose", "sample_type",
             "source"),
}  # fmt: skip
TRANSPORT_EXTENSION = "batchwatch.transport"
_ROUTE_KEY = re.compile(r"(GET|POST|PUT|PATCH|DELETE) /v1/\S*")


class FaultSpecError(ValueError):
    """A fault rule or ``--faults`` item that cannot mean anything; the message names it."""


# --- Rules ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaultRule:
    """Inject ``fault`` into a ``rate`` fraction of the requests to ``route`` (a key as in
    ``/_sim/stats``, or ``"*"`` for every ``/v1`` route), at most ``times`` times."""

    fault: str
    rate: float = 1.0
    times: int | None = None
    route: str = "*"
    retry_after: float | None = None  # 429 and 503; whole seconds, default 1
    stall_seconds: float | None = None  # stall; default 5

    def __post_init__(self) -> None:
        problem = next(_rule_problems(self), None)
        if problem is not None:
            raise FaultSpecError(problem)

    def applies_to(self, route: str) -> bool:
        if self.route not in ("*", route):
            return False
        if self.fault == "drop_create":
            return route == CREATE_ROUTE
        if self.fault == "unknown_status":
            return route in JOB_ROUTES
        return self.fault != "missing_field" or route not in BINARY_ROUTES

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)


def _rule_problems(rule: FaultRule) -> Iterator[str]:
    """What is wrong with ``rule``; only the first is reported, so later checks may rely on
    the earlier ones having passed."""
    if rule.fault not in FAULTS:
        yield f"unknown fault {rule.fault!r} (known: {', '.join(FAULTS)})"
    if not 0.0 <= rule.rate <= 1.0:  # also rejects NaN
        yield f"the rate must be between 0 and 1, not {rule.rate!r}"
    if rule.times is not None and rule.times < 0:
        yield f"times must be 0 or more, not {rule.times!r}"
    if rule.route != "*" and not _ROUTE_KEY.fullmatch(rule.route):
        yield f"route must be '*' or like 'GET /v1/batch/jobs/{{job_id}}', not {rule.route!r}"
    if rule.fault == "drop_create" and rule.route not in ("*", CREATE_ROUTE):
        yield f"drop_create only applies to {CREATE_ROUTE!r}, not {rule.route!r}"
    if rule.fault == "unknown_status" and rule.route not in ("*", *JOB_ROUTES):
        yield f"unknown_status only applies to routes that return jobs, not {rule.route!r}"
    after = rule.retry_after
    # HTTP's Retry-After is whole seconds; urllib3 rejects "0.5" as an invalid header.
    if after is not None and not (
        after >= 0 and math.isfinite(after) and float(after).is_integer()
    ):
        yield f"retry_after must be a whole number of seconds, 0 or more, not {after!r}"
    if rule.stall_seconds is not None and not 0.0 <= rule.stall_seconds < math.inf:
        yield f"stall_seconds must be a number of seconds, 0 or more, not {rule.stall_seconds!r}"


def parse_fault_spec(text: str) -> tuple[FaultRule, ...]:
    """``"429:0.05,reset:0.01"`` → rules (a bare name means rate 1), for ``--faults``."""
    if not text.strip():
        raise FaultSpecError("no faults given: write name:rate items, like 429:0.05,reset:0.01")
    rules = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            raise FaultSpecError(f"an empty item in {text!r}")
        name, colon, rate_text = item.partition(":")
        try:
            rate = float(rate_text) if colon else 1.0
        except ValueError:
            raise FaultSpecError(f"bad fault {item!r}: {rate_text!r} is not a rate") from None
        try:
            rules.append(FaultRule(name.strip(), rate))
        except FaultSpecError as exc:
            raise FaultSpecError(f"bad fault {item!r}: {exc}") from None
    return tuple(rules)


def parse_retry_after(text: str) -> float:
    """``--retry-after``, checked by the rules' own validation."""
    value = _seconds(text, "retry_after")
    FaultRule("503", retry_after=value)
    return value


def parse_stall_seconds(text: str) -> float:
    """``--stall-seconds``, checked by the rules' own validation."""
    value = _seconds(text, "stall_seconds")
    FaultRule("stall", stall_seconds=value)
    return value


def _seconds(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise FaultSpecError(f"{name} must be a number of seconds, not {text!r}") from None


def with_timings(
    rules: Iterable[FaultRule], retry_after: float | None, stall_seconds: float | None
) -> tuple[FaultRule, ...]:
    """``rules`` with the CLI's ``--retry-after``/``--stall-seconds`` where given."""
    return tuple(
        replace(
            rule,
            retry_after=rule.retry_after if retry_after is None else retry_after,
            stall_seconds=rule.stall_seconds if stall_seconds is None else stall_seconds,
        )
        for rule in rules
    )


# --- The injector: rules, dice, request log (thread-safe) ----------------------------------


@dataclass(frozen=True, slots=True)
class RuleCount:
    rule: FaultRule
    fired: int


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One ``/v1`` request: its arrival (epoch seconds), status sent (``None``: no
    response) and the fault injected into it."""

    at: float
    route: str
    status: int | None
    fault: str | None

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class _Entry:
    at: float
    route: str
    rule: FaultRule | None = None
    index: int = -1  # of the rule, in the rule set of ``generation``
    generation: int = 0
    pick: float = 0.0  # which field missing_field removes
    status: int | None = None


class FaultInjector:
    """The rules in force, how often each fired, and the log of the last ``log_size``
    requests. Shared by the server's event loop and the tests' threads, behind one lock."""

    def __init__(
        self,
        rules: Iterable[FaultRule] = (),
        seed: int = 0,
        *,
        clock: Callable[[], float] = time.time,
        log_size: int = 100_000,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._log: deque[_Entry] = deque(maxlen=log_size)
        self._generation = 0
        self.set(rules, seed)

    def set(self, rules: Iterable[FaultRule], seed: int = 0) -> None:
        """Replace the rules, zero their counts and reseed the dice."""
        fresh = tuple(rules)
        if not all(isinstance(rule, FaultRule) for rule in fresh):
            raise TypeError("fault rules must be FaultRule objects")
        with self._lock:
            self._rules = fresh
            self._fired = [0] * len(fresh)
            self._seed = seed
            self._random = random.Random(seed)
            self._generation += 1

    def clear(self) -> None:
        self.set(())

    @property
    def seed(self) -> int:
        return self._seed

    def rules(self) -> list[RuleCount]:
        with self._lock:
            return [RuleCount(r, n) for r, n in zip(self._rules, self._fired, strict=True)]

    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return [
                LoggedRequest(e.at, e.route, e.status, None if e.rule is None else e.rule.fault)
                for e in self._log
            ]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def to_wire(self) -> dict[str, Any]:
        """What ``GET /_sim/faults`` shows: the seed, and each rule with its count."""
        with self._lock:  # one snapshot: a concurrent ``set`` must not mix two rule sets
            rules = [
                r.to_wire() | {"fired": n} for r, n in zip(self._rules, self._fired, strict=True)
            ]
            return {"seed": self._seed, "rules": rules}

    # Used by the FaultLayer ----------------------------------------------------------------

    def begin(self, route: str) -> _Entry:
        """Log a request that just arrived and decide its fault."""
        with self._lock:
            entry = _Entry(self._clock(), route, generation=self._generation)
            for index, rule in enumerate(self._rules):
                if not rule.applies_to(route):
                    continue
                if rule.times is not None and self._fired[index] >= rule.times:
                    continue
                if self._random.random() < rule.rate:
                    self._fired[index] += 1
                    entry.rule, entry.index = rule, index
                    if rule.fault == "missing_field":
                        entry.pick = self._random.random()
                    break
            self._log.append(entry)
            return entry

    def refund(self, entry: _Entry) -> None:
        """The fault could not be applied after all (a body fault on an error response)."""
        with self._lock:
            if entry.rule is not None and entry.generation == self._generation:
                self._fired[entry.index] -= 1
            entry.rule = None

    def answered(self, entry: _Entry, status: int) -> None:
        with self._lock:
            entry.status = status


# --- The ASGI layer ---------------------------------------------------------------------------


def route_key(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """``"GET /v1/batch/jobs/{job_id}"``: the method and the matching route's template."""
    for route in routes:
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            return f"{scope['method']} {getattr(route, 'path', scope['path'])}"
    return f"{scope['method']} {scope['path']}"


@dataclass(slots=True)
class _Reply:
    """A response captured from the app, to be altered before it is sent."""

    status: int = 500
    headers: list[tuple[bytes, bytes]] | None = None
    body: bytes = b""

    def header_list(self, content_length: int) -> list[tuple[bytes, bytes]]:
        kept = [(k, v) for k, v in self.headers or () if k.lower() != b"content-length"]
        return [*kept, (b"content-length", str(content_length).encode())]


class FaultLayer:
    """Outermost middleware: logs each ``/v1`` request and injects its fault, if any.
    ``count`` records the requests it answers itself, which never reach the gateway."""

    def __init__(
        self,
        app: ASGIApp,
        injector: FaultInjector,
        routes: Sequence[BaseRoute],
        count: Callable[[str], None],
    ) -> None:
        self.app = app
        self.injector = injector
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
            seconds = DEFAULT_STALL_SECONDS if rule.stall_seconds is None else rule.stall_seconds
            await self.app(scope, receive, _delayed(send, seconds))
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
        elif rule.fault == "429":
            reply = JSONResponse(RATE_LIMIT_BODY, 429, headers={"Retry-After": after})
        else:
            status, message = ERROR_FAULTS[rule.fault]
            headers = {"Retry-After": after} if status == 503 else None
            reply = JSONResponse(error_body(message, "server_error"), status, headers=headers)
        await reply(scope, receive, send)

    async def _altered(
        self, rule: FaultRule, entry: _Entry, scope: Scope, receive: Receive, send: Send
    ) -> None:
        reply = await self._capture(scope, receive)
        if rule.fault == "truncate":
            claimed = len(reply.body) or 1
            await send({"type": "http.response.start", "status": reply.status,
                        "headers": reply.header_list(claimed)})  # fmt: skip
            part = reply.body[: len(reply.body) // 2]
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await _hang_up(scope, receive, reset=False)  # FIN once the part is flushed
            return
        body = _rewritten(reply, rule.fault, entry.pick)
        if body is None:
            self.injector.refund(entry)
        else:
            reply.body = body
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": reply.header_list(len(reply.body))})  # fmt: skip
        await send({"type": "http.response.body", "body": reply.body})

    async def _capture(self, scope: Scope, receive: Receive) -> _Reply:
        reply = _Reply()

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                reply.status, reply.headers = message["status"], list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                reply.body += message.get("body", b"")

        await self.app(scope, receive, capture)
        return reply

    def _recording(self, send: Send, entry: _Entry) -> Send:
        async def recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.injector.answered(entry, message["status"])
            await send(message)

        return recording


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


def _rewritten(reply: _Reply, fault: str, pick: float) -> bytes | None:
    """The body with the fault applied; ``None`` when it cannot carry it."""
    if reply.status != 200:
        return None
    try:
        body = json.loads(reply.body)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    items = body.get("data") if body.get("object") == "list" else [body]
    if not isinstance(items, list):
        return None
    objects = [item for item in items if isinstance(item, dict)]
    if fault == "unknown_status":
        jobs = [job for job in objects if "status" in job]
        for job in jobs:
            job["status"] = UNDOCUMENTED_STATUS
        changed = bool(jobs)
    elif objects:
        for item in objects:
            fields = REQUIRED_FIELDS.get(str(item.get("object")), tuple(item))
            present = [name for name in fields if name in item]
            if present:
                del item[present[int(pick * len(present))]]
        changed = True
    else:  # an empty list: its one required field
        changed = body.pop("total", None) is not None
    return json.dumps(body, separators=(",", ":")).encode() if changed else None


# --- Control routes ---------------------------------------------------------------------------


class FaultRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fault: str
    rate: float = 1.0
    times: int | None = None
    route: str = "*"
    retry_after: float | None = None
    stall_seconds: float | None = None

    @model_validator(mode="after")
    def _valid(self) -> FaultRuleIn:
        try:
            self.to_rule()
        except FaultSpecError as exc:
            # The message as context, not template: route keys contain braces.
            raise PydanticCustomError("value_error", "{problem}", {"problem": str(exc)}) from None
        return self

    def to_rule(self) -> FaultRule:
        return FaultRule(**self.model_dump())


class FaultsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[FaultRuleIn]
    seed: int = 0


def faults_router(injector: FaultInjector) -> APIRouter:
    """``/_sim/faults`` (the rules) and ``/_sim/requests`` (the log); no auth."""
    router = APIRouter(prefix="/_sim")

    @router.get("/faults")
    async def get_faults() -> JSONResponse:
        return JSONResponse(injector.to_wire())

    @router.post("/faults")
    async def set_faults(body: FaultsIn) -> JSONResponse:
        injector.set([rule.to_rule() for rule in body.rules], body.seed)
        return JSONResponse(injector.to_wire())

    @router.delete("/faults")
    async def clear_faults() -> JSONResponse:
        injector.clear()
        return JSONResponse(injector.to_wire())

    @router.get("/requests")
    async def logged_requests() -> JSONResponse:
        return JSONResponse({"requests": [r.to_wire() for r in injector.requests()]})

    return router
