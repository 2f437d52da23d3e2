"""The fault injector: the rules in force, the seeded dice, and the request log; and the
``/_sim`` routes that control them. An injector serves one provider's API, whose
``FaultProfile`` it holds (Mistral's unless told): a rule that cannot apply to that API (a
``drop_create`` on a route that creates nothing) is refused when it is set.

``GET /_sim/requests`` is the log of the last 100,000 ``/v1`` requests (arrival, route key,
status sent or null, fault), which tests use to prove, say, that nothing was sent inside a
``Retry-After`` window; ``POST /_sim/stats/reset`` clears it. A request answered by a fault
still counts in ``/_sim/stats``.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

from batchwatch.simulator.faults import MISTRAL_FAULTS, FaultProfile, FaultRule, FaultSpecError


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
class RequestRecord:
    """A logged request as the ``FaultLayer`` handles it: the fault decided for it, then the
    status it was answered with. Mutable, under the injector's lock."""

    at: float
    route: str
    rule: FaultRule | None = None
    index: int = -1  # of the rule, in the rule set of ``generation``
    generation: int = 0
    pick: float = 0.0  # which field missing_field removes
    status: int | None = None


class FaultInjector:
    """The rules in force, how often each fired, and the log of the last ``log_size``
    requests, for the API ``profile`` describes. Shared by the server's event loop and the
    tests' threads, behind one lock."""

    def __init__(
        self,
        rules: Iterable[FaultRule] = (),
        seed: int = 0,
        *,
        profile: FaultProfile = MISTRAL_FAULTS,
        clock: Callable[[], float] = time.time,
        log_size: int = 100_000,
    ) -> None:
        self.profile = profile
        self._lock = threading.Lock()
        self._clock = clock
        self._log: deque[RequestRecord] = deque(maxlen=log_size)
        self._generation = 0
        self.set(rules, seed)

    def set(self, rules: Iterable[FaultRule], seed: int = 0) -> None:
        """Replace the rules, zero their counts and reseed the dice. A rule that cannot apply
        to this API raises ``FaultSpecError`` and changes nothing."""
        fresh = tuple(rules)
        if not all(isinstance(rule, FaultRule) for rule in fresh):
            raise TypeError("fault rules must be FaultRule objects")
        problem = next(filter(None, map(self.profile.problem, fresh)), None)
        if problem is not None:
            raise FaultSpecError(problem)
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

    def begin(self, route: str) -> RequestRecord:
        """Log a request that just arrived and decide its fault."""
        with self._lock:
            entry = RequestRecord(self._clock(), route, generation=self._generation)
            for index, rule in enumerate(self._rules):
                if not rule.applies_to(route, self.profile):
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

    def refund(self, entry: RequestRecord) -> None:
        """The fault could not be applied after all (a body fault on an error response)."""
        with self._lock:
            if entry.rule is not None and entry.generation == self._generation:
                self._fired[entry.index] -= 1
            entry.rule = None

    def answered(self, entry: RequestRecord, status: int) -> None:
        with self._lock:
            entry.status = status


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
        rules = [rule.to_rule() for rule in body.rules]
        refused = _refused(rules, injector.profile)
        if refused:
            raise RequestValidationError(refused)
        injector.set(rules, body.seed)
        return JSONResponse(injector.to_wire())

    @router.delete("/faults")
    async def clear_faults() -> JSONResponse:
        injector.clear()
        return JSONResponse(injector.to_wire())

    @router.get("/requests")
    async def logged_requests() -> JSONResponse:
        return JSONResponse({"requests": [r.to_wire() for r in injector.requests()]})

    return router


def _refused(rules: list[FaultRule], profile: FaultProfile) -> list[dict[str, Any]]:
    """The rules that cannot apply to ``profile``'s API, as the items of FastAPI's 422 (the
    provider is not known to ``FaultRuleIn``, which checks everything else)."""
    return [
        {"type": "value_error", "loc": ("body", "rules", index), "msg": problem,
         "input": rule.to_wire()}
        for index, rule in enumerate(rules)
        if (problem := profile.problem(rule)) is not None
    ]  # fmt: skip
